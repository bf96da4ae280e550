//! Where a step's GPU time goes: each dispatch of a compiled plan timed on its own, grouped by
//! kernel, with the FLOPs and bytes its op states. On a device with timestamp queries every
//! dispatch runs in its own compute pass between two GPU timestamps, all in one submission;
//! without them (lavapipe may lack them) each dispatch is submitted alone and timed by the
//! host's clock, which then also counts a submission's overhead.

use std::collections::HashMap;
use std::fmt;

use crate::error::{Error, Result};
use crate::gpu::{Dispatch, Gpu};

/// What a dispatch belongs to, for throughput figures: the node (op) that prepared it and that
/// op's FLOPs and bytes. A profile credits them to the op's slowest dispatch, its main kernel
/// (the others are small passes such as a weight transpose or the sum of a split reduction).
#[derive(Clone, Debug, Default)]
pub struct DispatchCost {
    /// The op's node; None for dispatches of no op (the optimiser's).
    pub node: Option<usize>,
    pub flops: f64,
    pub bytes: f64,
}

/// How the kernels were timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// GPU timestamps around each dispatch, one submission.
    Timestamps,
    /// The host's clock around a submission of each dispatch alone.
    HostClock,
}

/// One kernel (shader and entry point) of a step: how often the step dispatches it, its
/// median time summed over those dispatches, and the work its ops state.
#[derive(Clone, Debug)]
pub struct KernelRow {
    pub kernel: String,
    pub calls: usize,
    pub ms: f64,
    pub flops: f64,
    pub bytes: f64,
}

impl KernelRow {
    pub fn gflops(&self) -> f64 {
        self.flops / (self.ms * 1e6)
    }

    pub fn gbytes_per_s(&self) -> f64 {
        self.bytes / (self.ms * 1e6)
    }
}

/// The kernels of one step, slowest first.
#[derive(Clone, Debug)]
pub struct Profile {
    pub timing: Timing,
    pub rows: Vec<KernelRow>,
    /// Each dispatch in step order: its kernel, median milliseconds and the work credited to it.
    pub dispatches: Vec<(String, f64, DispatchCost)>,
    /// The sum of the kernels' times.
    pub gpu_ms: f64,
    /// A whole step as the application runs it (one submission, wall clock), when measured.
    pub step_ms: Option<f64>,
}

impl Profile {
    /// How `gpu` can time kernels: timestamps where it offers them.
    pub fn best_timing(gpu: &Gpu) -> Timing {
        if gpu.timestamps {
            Timing::Timestamps
        } else {
            Timing::HostClock
        }
    }

    /// Times each of `dispatches` (`repeats` times, the median), in order, with `timing`. The
    /// dispatches run as a step would: parameters updated by them change.
    pub fn measure(
        gpu: &Gpu,
        dispatches: &[Dispatch],
        costs: &[DispatchCost],
        repeats: usize,
        timing: Timing,
    ) -> Result<Profile> {
        let repeats = repeats.max(1);
        let times = match timing {
            Timing::Timestamps if !gpu.timestamps => {
                return Err(Error::Invalid(format!(
                    "profile: {} offers no timestamp queries; time on the host's clock instead",
                    gpu.adapter.name
                )))
            }
            Timing::Timestamps => timestamped(gpu, dispatches, repeats)?,
            Timing::HostClock => host_clocked(gpu, dispatches, repeats)?,
        };
        // Each op's work goes to its slowest dispatch.
        let mut main_dispatch: HashMap<usize, usize> = HashMap::new();
        for (i, cost) in costs.iter().enumerate().take(dispatches.len()) {
            if let Some(node) = cost.node {
                let slowest = main_dispatch.entry(node).or_insert(i);
                if times[i] > times[*slowest] {
                    *slowest = i;
                }
            }
        }
        let credited = |i: usize| -> DispatchCost {
            match costs.get(i) {
                Some(cost) if cost.node.is_some_and(|n| main_dispatch[&n] == i) => cost.clone(),
                Some(cost) => DispatchCost {
                    node: cost.node,
                    ..Default::default()
                },
                None => DispatchCost::default(),
            }
        };
        let mut rows: Vec<KernelRow> = Vec::new();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, d) in dispatches.iter().enumerate() {
            let at = *index.entry(d.label.as_str()).or_insert_with(|| {
                rows.push(KernelRow {
                    kernel: d.label.clone(),
                    calls: 0,
                    ms: 0.0,
                    flops: 0.0,
                    bytes: 0.0,
                });
                rows.len() - 1
            });
            let row = &mut rows[at];
            row.calls += 1;
            row.ms += times[i];
            let cost = credited(i);
            row.flops += cost.flops;
            row.bytes += cost.bytes;
        }
        rows.sort_by(|a, b| b.ms.total_cmp(&a.ms));
        let each = dispatches
            .iter()
            .zip(&times)
            .enumerate()
            .map(|(i, (d, &ms))| (d.label.clone(), ms, credited(i)))
            .collect();
        let gpu_ms = rows.iter().map(|r| r.ms).sum();
        Ok(Profile {
            timing,
            rows,
            dispatches: each,
            gpu_ms,
            step_ms: None,
        })
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn host_clocked(gpu: &Gpu, dispatches: &[Dispatch], repeats: usize) -> Result<Vec<f64>> {
    let mut times = Vec::with_capacity(dispatches.len());
    for dispatch in dispatches {
        let mut runs = Vec::with_capacity(repeats);
        for _ in 0..repeats {
            let start = std::time::Instant::now();
            gpu.run(std::slice::from_ref(dispatch))?;
            runs.push(start.elapsed().as_secs_f64() * 1e3);
        }
        times.push(median(runs));
    }
    Ok(times)
}

/// Timestamp pairs per query set (the most a set may hold is 4096 queries).
const PAIRS_PER_SET: usize = 2048;

fn timestamped(gpu: &Gpu, dispatches: &[Dispatch], repeats: usize) -> Result<Vec<f64>> {
    let period_ns = gpu.queue.get_timestamp_period() as f64;
    let mut runs: Vec<Vec<f64>> = vec![Vec::with_capacity(repeats); dispatches.len()];
    for _ in 0..repeats {
        for (chunk_index, chunk) in dispatches.chunks(PAIRS_PER_SET).enumerate() {
            let count = 2 * chunk.len() as u32;
            let bytes = 8 * count as u64;
            let queries = gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("profile"),
                ty: wgpu::QueryType::Timestamp,
                count,
            });
            let resolved = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("profile timestamps"),
                size: bytes,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let staging = gpu.readback_buffer("profile timestamps", bytes);
            gpu.validated("profile", || {
                let mut encoder = gpu.device.create_command_encoder(&Default::default());
                for (i, dispatch) in chunk.iter().enumerate() {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&dispatch.label),
                        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                            query_set: &queries,
                            beginning_of_pass_write_index: Some(2 * i as u32),
                            end_of_pass_write_index: Some(2 * i as u32 + 1),
                        }),
                    });
                    dispatch.encode(&mut pass);
                }
                encoder.resolve_query_set(&queries, 0..count, &resolved, 0);
                encoder.copy_buffer_to_buffer(&resolved, 0, &staging, 0, bytes);
                gpu.queue.submit([encoder.finish()]);
            })?;
            let raw = gpu.read_mapped(&[&staging])?.pop().unwrap_or_default();
            let ticks: &[u64] = bytemuck::cast_slice(&raw);
            for i in 0..chunk.len() {
                let (begin, end) = (ticks[2 * i], ticks[2 * i + 1]);
                if end < begin {
                    return Err(Error::Readback(format!(
                        "profile: the GPU's timestamps of `{}` run backwards",
                        chunk[i].label
                    )));
                }
                let ms = (end - begin) as f64 * period_ns / 1e6;
                runs[chunk_index * PAIRS_PER_SET + i].push(ms);
            }
        }
    }
    Ok(runs.into_iter().map(median).collect())
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.timing {
            Timing::Timestamps => "GPU timestamps",
            Timing::HostClock => "host clock, each dispatch submitted alone",
        };
        writeln!(f, "kernels of one step ({how}):")?;
        writeln!(
            f,
            "{:>10} {:>6} {:>6}  {:>9} {:>9}  kernel",
            "GPU ms", "share", "calls", "GFLOP/s", "GB/s"
        )?;
        for row in &self.rows {
            let rate = |value: f64, per_ms: f64| {
                if value > 0.0 && row.ms > 0.0 {
                    format!("{per_ms:9.1}")
                } else {
                    format!("{:>9}", "-")
                }
            };
            writeln!(
                f,
                "{:>10.3} {:>5.1}% {:>6}  {} {}  {}",
                row.ms,
                100.0 * row.ms / self.gpu_ms.max(f64::MIN_POSITIVE),
                row.calls,
                rate(row.flops, row.gflops()),
                rate(row.bytes, row.gbytes_per_s()),
                row.kernel
            )?;
        }
        write!(f, "{:>10.3} in all", self.gpu_ms)?;
        if let Some(step) = self.step_ms {
            write!(
                f,
                "; a whole step takes {step:.3} ms on the host's clock ({:.3} ms beside the kernels: submission, readback, host work{})",
                (step - self.gpu_ms).max(0.0),
                if self.timing == Timing::HostClock {
                    ", partly counted in the kernels' times above"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}
