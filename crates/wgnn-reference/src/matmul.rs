//! Matrix products in float64: batched op(A) op(B) with op = identity or transpose, a rank-2
//! operand next to a rank-3 one shared over the batch (see `ops::matmul`).

/// The sizes and index maps of one product.
struct Product {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    a_batched: bool,
    b_batched: bool,
    transpose_a: bool,
    transpose_b: bool,
}

impl Product {
    fn new(a_dims: &[usize], b_dims: &[usize], transpose_a: bool, transpose_b: bool) -> Self {
        let last2 = |d: &[usize]| (d[d.len() - 2], d[d.len() - 1]);
        let (ar, ac) = last2(a_dims);
        let (br, bc) = last2(b_dims);
        let (m, k) = if transpose_a { (ac, ar) } else { (ar, ac) };
        let (kb, n) = if transpose_b { (bc, br) } else { (br, bc) };
        assert_eq!(k, kb, "inner dimensions differ");
        let (a_batched, b_batched) = (a_dims.len() == 3, b_dims.len() == 3);
        let batch = if a_batched {
            a_dims[0]
        } else if b_batched {
            b_dims[0]
        } else {
            1
        };
        Product {
            batch,
            m,
            n,
            k,
            a_batched,
            b_batched,
            transpose_a,
            transpose_b,
        }
    }

    /// Index in A's storage of op(A[batch])(m, k).
    fn a_index(&self, batch: usize, m: usize, k: usize) -> usize {
        let base = if self.a_batched {
            batch * self.m * self.k
        } else {
            0
        };
        base + if self.transpose_a {
            k * self.m + m
        } else {
            m * self.k + k
        }
    }

    /// Index in B's storage of op(B[batch])(k, n).
    fn b_index(&self, batch: usize, k: usize, n: usize) -> usize {
        let base = if self.b_batched {
            batch * self.k * self.n
        } else {
            0
        };
        base + if self.transpose_b {
            n * self.k + k
        } else {
            k * self.n + n
        }
    }

    fn c_index(&self, batch: usize, m: usize, n: usize) -> usize {
        (batch * self.m + m) * self.n + n
    }
}

/// C[b] = op(A[b]) op(B[b]), C row-major [batch, M, N] (or [M, N]).
pub fn forward(
    a: &[f64],
    a_dims: &[usize],
    b: &[f64],
    b_dims: &[usize],
    transpose_a: bool,
    transpose_b: bool,
) -> Vec<f64> {
    let p = Product::new(a_dims, b_dims, transpose_a, transpose_b);
    let mut c = vec![0.0; p.batch * p.m * p.n];
    for t in 0..p.batch {
        for m in 0..p.m {
            for n in 0..p.n {
                let mut total = 0.0;
                for k in 0..p.k {
                    total += a[p.a_index(t, m, k)] * b[p.b_index(t, k, n)];
                }
                c[p.c_index(t, m, n)] = total;
            }
        }
    }
    c
}

/// (dA, dB) for the upstream gradient dC, in the storage layouts of A and B.
pub fn backward(
    a: &[f64],
    a_dims: &[usize],
    b: &[f64],
    b_dims: &[usize],
    transpose_a: bool,
    transpose_b: bool,
    dc: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let p = Product::new(a_dims, b_dims, transpose_a, transpose_b);
    let mut da = vec![0.0; a.len()];
    let mut db = vec![0.0; b.len()];
    for t in 0..p.batch {
        for m in 0..p.m {
            for n in 0..p.n {
                let g = dc[p.c_index(t, m, n)];
                for k in 0..p.k {
                    da[p.a_index(t, m, k)] += g * b[p.b_index(t, k, n)];
                    db[p.b_index(t, k, n)] += g * a[p.a_index(t, m, k)];
                }
            }
        }
    }
    (da, db)
}
