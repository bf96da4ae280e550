//! The per-step values of an optimiser, on the GPU: written by `advance` at the start of each
//! update and by the CPU for learning-rate schedules, read by the update kernels.

use crate::error::{Error, Result};
use crate::gpu::{bytes_of, shader_struct, Dispatch, Gpu};

shader_struct! {
    /// Mirrors `Schedule` in optim.wgsl.
    #[derive(Debug)]
    pub(super) struct ScheduleValues {
        step: u32,
        lr: f32,
        step_size: f32,
        bias_correction2_sqrt: f32,
    }
}

const STEP_OFFSET: u64 = 0;
const LR_OFFSET: u64 = 4;

shader_struct! {
    /// Mirrors `Params` in optim.wgsl, shared by every entry point of the file.
    #[derive(Default)]
    pub(super) struct UpdateParams {
        pub n: u32,
        pub flags: u32,
        pub momentum: f32,
        pub weight_decay: f32,
        pub beta1: f32,
        pub beta2: f32,
        pub eps: f32,
        pub _pad: u32,
    }
}

pub(super) const NESTEROV: u32 = 1;
pub(super) const DECOUPLED: u32 = 2;

/// Step count and learning rate of one optimiser, in a 16-byte storage buffer.
pub struct Schedule {
    buffer: wgpu::Buffer,
}

pub(super) fn check_learning_rate(lr: f32) -> Result<()> {
    if !(lr.is_finite() && lr >= 0.0) {
        return Err(Error::Invalid(format!(
            "learning rate must be finite and >= 0, not {lr}"
        )));
    }
    Ok(())
}

impl Schedule {
    pub(super) fn new(gpu: &Gpu, label: &str, lr: f32) -> Result<Self> {
        check_learning_rate(lr)?;
        let values = ScheduleValues {
            step: 0,
            lr,
            step_size: lr,
            bias_correction2_sqrt: 1.0,
        };
        Ok(Self {
            buffer: gpu.upload(label, &[values])?,
        })
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    fn read(&self, gpu: &Gpu) -> Result<ScheduleValues> {
        Ok(gpu.download::<ScheduleValues>(&self.buffer, 1)?[0])
    }

    /// Takes effect from the next step on; queued, so it never races a step in flight.
    pub fn set_learning_rate(&self, gpu: &Gpu, lr: f32) -> Result<()> {
        check_learning_rate(lr)?;
        gpu.queue
            .write_buffer(&self.buffer, LR_OFFSET, bytemuck::bytes_of(&lr));
        Ok(())
    }

    pub fn learning_rate(&self, gpu: &Gpu) -> Result<f32> {
        Ok(self.read(gpu)?.lr)
    }

    pub fn step_count(&self, gpu: &Gpu) -> Result<u64> {
        Ok(self.read(gpu)?.step as u64)
    }

    pub fn set_step_count(&self, gpu: &Gpu, step: u64) -> Result<()> {
        let step = u32::try_from(step)
            .map_err(|_| Error::Invalid(format!("step count {step} exceeds {}", u32::MAX)))?;
        gpu.queue
            .write_buffer(&self.buffer, STEP_OFFSET, bytemuck::bytes_of(&step));
        Ok(())
    }

    /// The dispatch that starts each update: increments the step and writes the bias
    /// corrections for betas `beta1`, `beta2` (0 and 0 when there are none).
    pub(super) fn advance(&self, gpu: &Gpu, beta1: f32, beta2: f32) -> Result<Dispatch> {
        let params = UpdateParams {
            beta1,
            beta2,
            ..Default::default()
        };
        gpu.dispatch(
            &super::SHADER,
            "advance",
            bytes_of(&params),
            &[],
            &[&self.buffer],
            1,
        )
    }
}
