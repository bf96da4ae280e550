//! Padding of windowed ops (convolution, pooling): zeros (or nothing, for pooling) added before
//! and after each spatial axis, possibly different amounts, and ONNX's automatic modes that pick
//! the amounts from the input size so the output keeps `ceil(input / stride)` positions.

use crate::error::{Error, Result};

/// How much padding goes before (`begin`) and after (`end`) each spatial axis, outermost first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pads {
    pub begin: Vec<usize>,
    pub end: Vec<usize>,
}

/// ONNX's `auto_pad`: `SameUpper` puts the odd padding element at the end (TensorFlow's SAME),
/// `SameLower` at the beginning; `Valid` pads nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoPad {
    SameUpper,
    SameLower,
    Valid,
}

impl Pads {
    /// The same amount before and after each axis.
    pub fn symmetric(padding: &[usize]) -> Self {
        Self {
            begin: padding.to_vec(),
            end: padding.to_vec(),
        }
    }

    /// No padding on `dims` axes.
    pub fn none(dims: usize) -> Self {
        Self::symmetric(&vec![0; dims])
    }

    pub fn dims(&self) -> usize {
        self.begin.len()
    }

    /// Begin and end padding of one axis added together.
    pub fn total(&self, axis: usize) -> usize {
        self.begin[axis] + self.end[axis]
    }

    pub fn is_symmetric(&self) -> bool {
        self.begin == self.end
    }

    /// ONNX's pads attribute: all begins, then all ends.
    pub fn from_onnx(pads: &[usize]) -> Result<Self> {
        if !pads.len().is_multiple_of(2) {
            return Err(Error::shape(
                "pads",
                format!(
                    "{} values given; it needs a begin and an end per spatial axis",
                    pads.len()
                ),
            ));
        }
        let (begin, end) = pads.split_at(pads.len() / 2);
        Ok(Self {
            begin: begin.to_vec(),
            end: end.to_vec(),
        })
    }

    /// The padding that `mode` gives an input of `input` positions per axis under the window
    /// `kernel`, `stride` and `dilation` (ONNX's rule: the output has `ceil(input / stride)`
    /// positions for the SAME modes).
    pub fn auto(
        mode: AutoPad,
        input: &[usize],
        kernel: &[usize],
        stride: &[usize],
        dilation: &[usize],
    ) -> Result<Self> {
        let dims = input.len();
        if kernel.len() != dims || stride.len() != dims || dilation.len() != dims {
            return Err(Error::shape(
                "auto padding",
                format!(
                    "{dims} spatial axes need a kernel, stride and dilation each (got {}, {} and {})",
                    kernel.len(),
                    stride.len(),
                    dilation.len()
                ),
            ));
        }
        if stride.contains(&0) || dilation.contains(&0) || kernel.contains(&0) {
            return Err(Error::shape(
                "auto padding",
                "kernel, stride and dilation must be at least 1",
            ));
        }
        let mut pads = Self::none(dims);
        if mode == AutoPad::Valid {
            return Ok(pads);
        }
        for axis in 0..dims {
            let out = input[axis].div_ceil(stride[axis]);
            let span = (kernel[axis] - 1) * dilation[axis] + 1;
            let needed = ((out - 1) * stride[axis] + span).saturating_sub(input[axis]);
            let small = needed / 2;
            let (begin, end) = match mode {
                AutoPad::SameUpper => (small, needed - small),
                AutoPad::SameLower => (needed - small, small),
                AutoPad::Valid => unreachable!("handled above"),
            };
            pads.begin[axis] = begin;
            pads.end[axis] = end;
        }
        Ok(pads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_modes_keep_ceil_of_input_over_stride() {
        for input in 1..12 {
            for kernel in 1..5 {
                for stride in 1..4 {
                    for dilation in 1..3 {
                        for mode in [AutoPad::SameUpper, AutoPad::SameLower] {
                            let pads =
                                Pads::auto(mode, &[input], &[kernel], &[stride], &[dilation])
                                    .unwrap();
                            let span = (kernel - 1) * dilation + 1;
                            let padded = input + pads.total(0);
                            let out = if padded >= span {
                                (padded - span) / stride + 1
                            } else {
                                0
                            };
                            assert_eq!(out, input.div_ceil(stride), "{mode:?} {input} {kernel}");
                            let (small, large) = match mode {
                                AutoPad::SameUpper => (pads.begin[0], pads.end[0]),
                                _ => (pads.end[0], pads.begin[0]),
                            };
                            assert!(large == small || large == small + 1);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn onnx_pads_split_into_begins_and_ends() {
        let pads = Pads::from_onnx(&[1, 2, 3, 4]).unwrap();
        assert_eq!(pads.begin, vec![1, 2]);
        assert_eq!(pads.end, vec![3, 4]);
        assert!(Pads::from_onnx(&[1, 2, 3]).is_err());
    }
}
