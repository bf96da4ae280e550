//! A pool of storage buffers reused by size, so that steady-state work allocates nothing.
//! Plans draw every activation buffer from one at compile time and hand buffers back when the
//! tensor in them is dead, so tensors whose lifetimes do not overlap share memory.

use std::sync::Arc;

use super::Gpu;
use crate::error::Result;

#[derive(Default)]
pub struct BufferPool {
    free: Vec<Arc<wgpu::Buffer>>,
    allocated_bytes: u64,
    allocations: usize,
}

impl BufferPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// The smallest free buffer of at least `bytes`, or a new one.
    pub fn take(&mut self, gpu: &Gpu, label: &str, bytes: u64) -> Result<Arc<wgpu::Buffer>> {
        let bytes = bytes.max(4).next_multiple_of(4);
        let best = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, b)| b.size() >= bytes && b.size() <= bytes.saturating_mul(2))
            .min_by_key(|(_, b)| b.size())
            .map(|(i, _)| i);
        if let Some(i) = best {
            return Ok(self.free.swap_remove(i));
        }
        let buffer = Arc::new(gpu.storage_buffer(label, bytes)?);
        self.allocated_bytes += buffer.size();
        self.allocations += 1;
        Ok(buffer)
    }

    /// Returns a buffer for reuse.
    pub fn give_back(&mut self, buffer: Arc<wgpu::Buffer>) {
        self.free.push(buffer);
    }

    /// Bytes ever allocated by this pool (its high-water mark, since nothing is freed).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_bytes
    }

    pub fn allocations(&self) -> usize {
        self.allocations
    }
}
