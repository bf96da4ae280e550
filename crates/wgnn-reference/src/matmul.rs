//! Matrix products in float64: batched op(A) op(B) with op = identity or transpose, whose batch
//! dims (those before the last two) broadcast as numpy's `matmul` (see `ops::matmul`).

/// The sizes and index maps of one product.
struct Product {
    /// C's batch dims: the numpy broadcast of A's and B's (dims before the last two).
    batch_dims: Vec<usize>,
    a_batch_dims: Vec<usize>,
    b_batch_dims: Vec<usize>,
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    transpose_a: bool,
    transpose_b: bool,
}

/// The index of the matrix of an operand with batch dims `dims` that C's batch multi-index
/// `index` reads: dims aligned right, index 0 along a dim of size 1 (broadcast).
fn operand_batch(index: &[usize], dims: &[usize]) -> usize {
    let skip = index.len() - dims.len();
    dims.iter()
        .zip(&index[skip..])
        .fold(0, |acc, (&d, &i)| acc * d + if d == 1 { 0 } else { i })
}

impl Product {
    fn new(a_dims: &[usize], b_dims: &[usize], transpose_a: bool, transpose_b: bool) -> Self {
        let last2 = |d: &[usize]| (d[d.len() - 2], d[d.len() - 1]);
        let (ar, ac) = last2(a_dims);
        let (br, bc) = last2(b_dims);
        let (m, k) = if transpose_a { (ac, ar) } else { (ar, ac) };
        let (kb, n) = if transpose_b { (bc, br) } else { (br, bc) };
        assert_eq!(k, kb, "inner dimensions differ");
        let a_batch_dims = a_dims[..a_dims.len() - 2].to_vec();
        let b_batch_dims = b_dims[..b_dims.len() - 2].to_vec();
        let rank = a_batch_dims.len().max(b_batch_dims.len());
        let padded = |d: &[usize]| {
            let mut p = vec![1; rank - d.len()];
            p.extend_from_slice(d);
            p
        };
        let batch_dims: Vec<usize> = padded(&a_batch_dims)
            .iter()
            .zip(padded(&b_batch_dims))
            .map(|(&x, y)| {
                assert!(x == y || x == 1 || y == 1, "batch dims do not broadcast");
                x.max(y)
            })
            .collect();
        Product {
            batch: batch_dims.iter().product(),
            batch_dims,
            a_batch_dims,
            b_batch_dims,
            m,
            n,
            k,
            transpose_a,
            transpose_b,
        }
    }

    /// C's batch multi-index of flat batch `batch`.
    fn batch_index(&self, batch: usize) -> Vec<usize> {
        let mut index = vec![0; self.batch_dims.len()];
        let mut rest = batch;
        for (i, &d) in index.iter_mut().zip(&self.batch_dims).rev() {
            *i = rest % d;
            rest /= d;
        }
        index
    }

    /// Index in A's storage of op(A[batch])(m, k).
    fn a_index(&self, batch: usize, m: usize, k: usize) -> usize {
        let base = operand_batch(&self.batch_index(batch), &self.a_batch_dims) * self.m * self.k;
        base + if self.transpose_a {
            k * self.m + m
        } else {
            m * self.k + k
        }
    }

    /// Index in B's storage of op(B[batch])(k, n).
    fn b_index(&self, batch: usize, k: usize, n: usize) -> usize {
        let base = operand_batch(&self.batch_index(batch), &self.b_batch_dims) * self.k * self.n;
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

/// C[b] = op(A[b]) op(B[b]), C row-major [batch..., M, N] (or [M, N]).
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
