//! The GPU context: adapter selection, the device with the adapter's own limits, the pipeline
//! cache, and the plumbing to run kernels and read buffers back.

mod kernel;
mod layout;
mod pool;
mod shader;
mod tuning;

pub use kernel::{bytes_of, workgroups_for, Dispatch, KernelCall};
pub(crate) use layout::shader_struct;
pub use layout::{check_structs, compare_struct, StructLayout};
pub use pool::BufferPool;
pub(crate) use shader::wgsl_file;
pub use shader::{assemble, validate_wgsl, Shader, WgslFile};
pub use tuning::{Tuner, TuningMode};

use crate::error::{Error, Result};
use kernel::PipelineCache;

/// One adapter as `wgnn` sees it, for listing.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}, driver {})",
            self.name, self.backend, self.device_type, self.driver
        )
    }
}

fn summarize(info: &wgpu::AdapterInfo) -> AdapterSummary {
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
    }
}

fn instance() -> wgpu::Instance {
    // Honours WGPU_BACKEND (and wgpu's instance flags from the environment).
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter the enabled backends can see (filtered by `WGPU_BACKEND` when set).
pub fn list_adapters() -> Vec<AdapterSummary> {
    let instance = instance();
    let backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all());
    pollster::block_on(instance.enumerate_adapters(backends))
        .iter()
        .map(|a| summarize(&a.get_info()))
        .collect()
}

/// Lanes that the subgroup kernels broadcast from: they need subgroups at least this large.
pub const SUBGROUP_BROADCAST_LANES: u32 = 8;

/// Which adapter to open.
#[derive(Clone, Debug)]
pub struct AdapterChoice {
    /// A case-insensitive substring of the adapter's name.
    pub name: Option<String>,
    pub power: wgpu::PowerPreference,
    pub backends: wgpu::Backends,
    /// Use subgroup operations where the adapter has them (kernels that need them have
    /// fallbacks); false opens the device without them, e.g. to test the fallbacks.
    pub subgroups: bool,
    /// Whether kernels are chosen by timing them; None: `TuningMode::from_env`.
    pub tuning: Option<TuningMode>,
}

impl AdapterChoice {
    /// wgpu's conventions: `WGPU_ADAPTER_NAME` (a substring of the adapter's name), else
    /// `WGPU_POWER_PREF` (`low`, `high`, `none`; default high performance), among the backends
    /// of `WGPU_BACKEND` (e.g. `vulkan`, `metal`, `dx12`; default all). `WGNN_SUBGROUPS=0`
    /// turns subgroup operations off.
    pub fn from_env() -> Self {
        Self {
            name: std::env::var("WGPU_ADAPTER_NAME")
                .ok()
                .filter(|n| !n.is_empty()),
            power: wgpu::PowerPreference::from_env()
                .unwrap_or(wgpu::PowerPreference::HighPerformance),
            backends: wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all()),
            subgroups: std::env::var("WGNN_SUBGROUPS").map_or(true, |v| v != "0"),
            tuning: None,
        }
    }
}

/// A device and queue with the kernels compiled so far.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    /// The device has subgroup operations with subgroups of at least 8 invocations, which the
    /// subgroup kernels (`ops/*/subgroup.wgsl`) need (broadcasts from lanes 0 to 7).
    pub subgroup_broadcast: bool,
    /// The device was opened with timestamp queries at the start and end of compute passes,
    /// which `Plan::profile` uses to time each kernel on the GPU itself.
    pub timestamps: bool,
    /// The autotuner's choices of kernel designs (`TuningMode`).
    pub tuner: Tuner,
    pipelines: PipelineCache,
}

impl Gpu {
    /// Picks an adapter following wgpu's conventions (see `AdapterChoice::from_env`) and opens
    /// the device with the adapter's own limits, not WebGPU's defaults.
    pub fn new() -> Result<Self> {
        Self::with_choice(&AdapterChoice::from_env())
    }

    pub fn with_choice(choice: &AdapterChoice) -> Result<Self> {
        let instance = instance();
        let adapter = match &choice.name {
            Some(wanted) => {
                let adapters = pollster::block_on(instance.enumerate_adapters(choice.backends));
                let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
                adapters
                    .into_iter()
                    .find(|a| {
                        a.get_info()
                            .name
                            .to_lowercase()
                            .contains(&wanted.to_lowercase())
                    })
                    .ok_or_else(|| {
                        Error::NoAdapter(format!(" named like {wanted:?} (available: {names:?})"))
                    })?
            }
            None => {
                let options = wgpu::RequestAdapterOptions {
                    power_preference: choice.power,
                    ..Default::default()
                };
                pollster::block_on(instance.request_adapter(&options))
                    .map_err(|e| Error::NoAdapter(format!(" ({e})")))?
            }
        };
        Self::from_adapter(adapter, choice)
    }

    fn from_adapter(adapter: wgpu::Adapter, choice: &AdapterChoice) -> Result<Self> {
        let subgroups = choice.subgroups;
        let info = summarize(&adapter.get_info());
        let tuning = choice.tuning.clone().unwrap_or_else(|| {
            TuningMode::from_env(adapter.get_info().device_type == wgpu::DeviceType::Cpu)
        });
        let tuner = Tuner::new(tuning, &info.name, &info.driver);
        let limits = adapter.limits();
        let subgroup_broadcast = subgroups
            && adapter.features().contains(wgpu::Features::SUBGROUP)
            && adapter.get_info().subgroup_min_size >= SUBGROUP_BROADCAST_LANES;
        let timestamps = adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let mut required_features = wgpu::Features::empty();
        if subgroup_broadcast {
            required_features |= wgpu::Features::SUBGROUP;
        }
        if timestamps {
            required_features |= wgpu::Features::TIMESTAMP_QUERY;
        }
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("wgnn"),
            required_features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&descriptor))
            .map_err(|e| Error::Device(e.to_string()))?;
        Ok(Self {
            device,
            queue,
            adapter: info,
            limits,
            subgroup_broadcast,
            timestamps,
            tuner,
            pipelines: PipelineCache::default(),
        })
    }

    /// Runs `f` inside a validation error scope and turns a wgpu validation error into
    /// `Error::Validation` naming `what` (usually the kernel).
    pub fn validated<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        match pollster::block_on(scope.pop()) {
            None => Ok(value),
            Some(e) => Err(Error::Validation {
                kernel: what.to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// A storage buffer of `bytes` bytes (at least 4), usable as kernel input or output and as a
    /// copy source and destination.
    pub fn storage_buffer(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let size = bytes.max(4).next_multiple_of(4);
        let max = self
            .limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size);
        if size > max {
            return Err(Error::Limit {
                what: format!("buffer `{label}`"),
                message: format!("{size} bytes requested, the device binds at most {max} bytes"),
            });
        }
        // The allocation runs inside an out-of-memory scope as well: a plan that does not fit
        // the device fails at compile time, naming the buffer, before any step runs.
        let memory = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.validated(label, || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        if let Some(e) = pollster::block_on(memory.pop()) {
            return Err(Error::Limit {
                what: format!("buffer `{label}`"),
                message: format!("the device is out of memory for {size} more bytes: {e}"),
            });
        }
        buffer
    }

    /// A storage buffer holding `data`.
    pub fn upload<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> Result<wgpu::Buffer> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let buffer = self.storage_buffer(label, bytes.len() as u64)?;
        self.queue.write_buffer(&buffer, 0, bytes);
        Ok(buffer)
    }

    /// Reads `len` values of type T from the start of `buffer` (waits for the GPU).
    pub fn download<T: bytemuck::Pod>(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<T>> {
        let bytes = (len * std::mem::size_of::<T>()) as u64;
        let staging = self.readback_buffer("download", bytes);
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes.next_multiple_of(4));
        self.queue.submit([encoder.finish()]);
        let mut out = self.read_mapped(&[&staging])?;
        let raw = out.pop().unwrap_or_default();
        Ok(bytemuck::cast_slice::<u8, T>(&raw[..bytes as usize]).to_vec())
    }

    /// A buffer that GPU results are copied into so that the CPU can map and read them.
    pub fn readback_buffer(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Maps each readback buffer, waits for the GPU, copies the bytes out and unmaps.
    pub fn read_mapped(&self, buffers: &[&wgpu::Buffer]) -> Result<Vec<Vec<u8>>> {
        let (sender, receiver) = std::sync::mpsc::channel();
        for (i, buffer) in buffers.iter().enumerate() {
            let sender = sender.clone();
            buffer.slice(..).map_async(wgpu::MapMode::Read, move |r| {
                let _ = sender.send((i, r));
            });
        }
        drop(sender);
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Readback(e.to_string()))?;
        for (_, result) in receiver.iter() {
            result.map_err(|e| Error::Readback(e.to_string()))?;
        }
        let mut out = Vec::with_capacity(buffers.len());
        for buffer in buffers {
            let view = buffer
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::Readback(e.to_string()))?;
            out.push(view.to_vec());
            drop(view);
            buffer.unmap();
        }
        Ok(out)
    }

    /// Waits until the GPU has finished all submitted work.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Readback(e.to_string()))?;
        Ok(())
    }

    /// Splits a count of workgroups over x, y and z so that no dimension exceeds
    /// `max_compute_workgroups_per_dimension`. Kernels recover the flat index with
    /// `workgroup_index()` (`WORKGROUP_INDEX`) and ignore the overshoot.
    pub fn split_workgroups(&self, total: u32) -> Result<[u32; 3]> {
        split_workgroups(total, self.limits.max_compute_workgroups_per_dimension)
    }
}

/// `workgroup_index(wid, nwg)`, the flat index of a workgroup of a dispatch that
/// `Gpu::split_workgroups` spread over x, y and z: every shader includes it.
pub static WORKGROUP_INDEX: WgslFile = wgsl_file!("gpu/workgroup_index.wgsl");

/// `Gpu::split_workgroups` for a given per-dimension limit.
pub fn split_workgroups(total: u32, max_per_dimension: u32) -> Result<[u32; 3]> {
    let max = max_per_dimension.max(1);
    if total <= max {
        return Ok([total.max(1), 1, 1]);
    }
    let y = total.div_ceil(max);
    if y <= max {
        return Ok([max, y, 1]);
    }
    let z = y.div_ceil(max);
    if z <= max {
        return Ok([max, max, z]);
    }
    Err(Error::Limit {
        what: "dispatch".into(),
        message: format!("{total} workgroups exceed {max}^3"),
    })
}
