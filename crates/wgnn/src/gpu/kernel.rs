//! Kernels: a shader, an entry point and its override constants. The pipeline cache compiles
//! each distinct (shader, entry point, constants, binding layout) once.
//!
//! Binding convention, shared by every kernel:
//! - `@group(0) @binding(0)`: `var<uniform> p: Params`, the op's shapes and scalars;
//! - `@binding(1..=R)`: the R inputs, `var<storage, read>`;
//! - `@binding(R+1..=R+W)`: the W outputs, `var<storage, read_write>`.
//!
//! Each kernel is dispatched as a flat count of workgroups that the runtime spreads over x, y, z
//! (see `Gpu::split_workgroups`); `workgroup_index` (`gpu/workgroup_index.wgsl`, which every
//! shader includes) recovers the flat index.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::{Gpu, Shader};
use crate::error::{Error, Result};

/// Everything needed to prepare one dispatch of one kernel.
pub struct KernelCall<'a> {
    pub shader: &'static Shader,
    pub entry: &'static str,
    /// WGSL `override` values (tile sizes and the like); part of the pipeline cache key.
    pub constants: &'a [(&'static str, f64)],
    /// Bytes of the uniform `Params` struct at binding 0 (a `#[repr(C)]` Pod struct).
    pub params: &'a [u8],
    pub reads: &'a [&'a wgpu::Buffer],
    pub writes: &'a [&'a wgpu::Buffer],
    /// How many workgroups to launch in total.
    pub workgroups: u32,
}

/// A prepared dispatch: pipeline, bind group and grid, created once and encoded every step.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub label: String,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    grid: [u32; 3],
}

impl Dispatch {
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.grid[0], self.grid[1], self.grid[2]);
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct PipelineKey {
    shader: &'static str,
    entry: &'static str,
    constants: Vec<(&'static str, u64)>,
    reads: usize,
    writes: usize,
}

struct CachedPipeline {
    pipeline: Arc<wgpu::ComputePipeline>,
    layout: wgpu::BindGroupLayout,
}

#[derive(Default)]
pub(super) struct PipelineCache {
    modules: Mutex<HashMap<&'static str, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<CachedPipeline>>>,
}

fn layout_entry(binding: u32, ty: wgpu::BufferBindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

impl Gpu {
    fn shader_module(&self, shader: &'static Shader) -> Result<Arc<wgpu::ShaderModule>> {
        if let Some(module) = self.pipelines.modules.lock().unwrap().get(shader.name) {
            return Ok(module.clone());
        }
        if shader.subgroups && !self.subgroup_broadcast {
            return Err(Error::Invalid(format!(
                "shader {} needs subgroup operations, which this device was opened without",
                shader.name
            )));
        }
        let source = shader
            .source()
            .map_err(|e| Error::Invalid(format!("shader {}: {e}", shader.name)))?;
        let module = self.validated(shader.name, || {
            self.device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(shader.name),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                })
        })?;
        let module = Arc::new(module);
        self.pipelines
            .modules
            .lock()
            .unwrap()
            .insert(shader.name, module.clone());
        Ok(module)
    }

    fn pipeline(&self, call: &KernelCall<'_>) -> Result<Arc<CachedPipeline>> {
        let key = PipelineKey {
            shader: call.shader.name,
            entry: call.entry,
            constants: call
                .constants
                .iter()
                .map(|&(k, v)| (k, v.to_bits()))
                .collect(),
            reads: call.reads.len(),
            writes: call.writes.len(),
        };
        if let Some(cached) = self.pipelines.pipelines.lock().unwrap().get(&key) {
            return Ok(cached.clone());
        }
        let module = self.shader_module(call.shader)?;
        let label = format!("{}::{}", call.shader.name, call.entry);
        let mut entries = vec![layout_entry(0, wgpu::BufferBindingType::Uniform)];
        for i in 0..call.reads.len() {
            entries.push(layout_entry(
                1 + i as u32,
                wgpu::BufferBindingType::Storage { read_only: true },
            ));
        }
        for i in 0..call.writes.len() {
            let binding = 1 + (call.reads.len() + i) as u32;
            entries.push(layout_entry(
                binding,
                wgpu::BufferBindingType::Storage { read_only: false },
            ));
        }
        let cached = self.validated(&label, || {
            let layout = self
                .device
                .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(&label),
                    entries: &entries,
                });
            let pipeline_layout =
                self.device
                    .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(&label),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
            let pipeline = self
                .device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: Some(&pipeline_layout),
                    module: &module,
                    entry_point: Some(call.entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: call.constants,
                        // Kernels initialise their workgroup memory themselves.
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                });
            CachedPipeline {
                pipeline: Arc::new(pipeline),
                layout,
            }
        })?;
        let cached = Arc::new(cached);
        self.pipelines
            .pipelines
            .lock()
            .unwrap()
            .insert(key, cached.clone());
        Ok(cached)
    }

    /// Compiles (or fetches) the pipeline, uploads the uniform parameters and creates the bind
    /// group: everything a step needs, done once.
    pub fn prepare(&self, call: KernelCall<'_>) -> Result<Dispatch> {
        let label = format!("{}::{}", call.shader.name, call.entry);
        let cached = self.pipeline(&call)?;
        let grid = self.split_workgroups(call.workgroups)?;
        let mut params = call.params.to_vec();
        params.resize(params.len().max(16).next_multiple_of(16), 0);
        let bind_group = self.validated(&label, || {
            let uniform = self
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(&label),
                    contents: &params,
                    usage: wgpu::BufferUsages::UNIFORM,
                });
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: uniform.as_entire_binding(),
            }];
            for (i, buffer) in call.reads.iter().chain(call.writes.iter()).enumerate() {
                entries.push(wgpu::BindGroupEntry {
                    binding: 1 + i as u32,
                    resource: buffer.as_entire_binding(),
                });
            }
            self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&label),
                layout: &cached.layout,
                entries: &entries,
            })
        })?;
        Ok(Dispatch {
            label,
            pipeline: cached.pipeline.clone(),
            bind_group,
            grid,
        })
    }

    /// `prepare` for the common case of a kernel without override constants.
    pub fn dispatch(
        &self,
        shader: &'static Shader,
        entry: &'static str,
        params: &[u8],
        reads: &[&wgpu::Buffer],
        writes: &[&wgpu::Buffer],
        workgroups: u32,
    ) -> Result<Dispatch> {
        self.prepare(KernelCall {
            shader,
            entry,
            constants: &[],
            params,
            reads,
            writes,
            workgroups,
        })
    }

    /// Encodes `dispatches` into one compute pass, submits, and waits; validation errors come
    /// back naming the first kernel. For one-off work (tests, uploads); plans batch their own.
    pub fn run(&self, dispatches: &[Dispatch]) -> Result<()> {
        let what = dispatches
            .first()
            .map(|d| d.label.as_str())
            .unwrap_or("empty dispatch list");
        self.validated(what, || {
            let mut encoder = self.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                for d in dispatches {
                    d.encode(&mut pass);
                }
            }
            self.queue.submit([encoder.finish()]);
        })?;
        self.wait()
    }
}

/// Workgroups needed for `n` invocations at `size` invocations per workgroup.
pub fn workgroups_for(n: usize, size: usize) -> u32 {
    n.div_ceil(size) as u32
}

/// Uniform parameter structs are `#[repr(C)]` Pod types: this gives their bytes.
pub fn bytes_of<T: bytemuck::Pod>(params: &T) -> &[u8] {
    bytemuck::bytes_of(params)
}
