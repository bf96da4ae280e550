//! Running the network on images (`ImageRunner`: to trunk maps, to descriptors, which training
//! precomputes, or to embeddings) and the head's parts on their own. All are compiled plans of a
//! fixed batch size; a short last batch is padded with zeros and the padding rows are dropped.
//! With zoom alignment an image runs in two stages: the alignment stage's descriptor, then the
//! network on the image viewed at the zoom the regressor picks from it.

use super::align::ZoomRegressor;
use super::network::{NetworkSpec, TrunkArchitecture, TRUNK_ARCHITECTURE};
use wgnn::error::{Error, Result};
use wgnn::graph::{Graph, NodeId, Plan, PlanSpec};
use wgnn::nn::ParamStore;
use wgnn::Gpu;
use wgnn_models::face_detection::FaceDetector;
use wgnn_models::face_landmarks::Rect;

/// Images per trunk dispatch: large enough to amortise a submission, small enough that the
/// activations of 184x224 inputs stay under 100 MiB.
pub const BATCH: usize = 8;

/// The embedded weights of `spec`'s trunk, loaded once per call site.
pub fn trunk_weights(gpu: &Gpu, spec: &NetworkSpec) -> Result<ParamStore> {
    match spec.trunk.architecture {
        TrunkArchitecture::SqueezeNet => {
            wgnn_assets::backbone_weights(gpu, TRUNK_ARCHITECTURE, None)
        }
        TrunkArchitecture::FaceResNet => wgnn_assets::face_resnet_weights(gpu),
    }
}

/// A compiled plan from a batch of `BATCH` inputs to one output per input.
struct BatchedPlan {
    plan: Plan,
    input: NodeId,
    image_len: usize,
    output_len: usize,
}

impl BatchedPlan {
    /// `build` maps the input node `[BATCH, item...]` to the output node.
    fn compile(
        gpu: &Gpu,
        item: &[usize],
        params: &ParamStore,
        build: impl FnOnce(&mut Graph, NodeId) -> Result<NodeId>,
    ) -> Result<Self> {
        let mut g = Graph::new();
        let dims: Vec<usize> = std::iter::once(BATCH).chain(item.iter().copied()).collect();
        let input = g.input("images", wgnn::Shape::new(&dims)?);
        let output = build(&mut g, input)?;
        let output_len = g.shape(output).numel() / BATCH;
        let plan = Plan::compile(
            gpu,
            &g,
            params,
            PlanSpec {
                outputs: vec![output],
                ..Default::default()
            },
        )?;
        Ok(Self {
            plan,
            input,
            image_len: item.iter().product(),
            output_len,
        })
    }

    /// Runs `images` (`[N, 3, H, W]` row-major) through the plan, calling `progress(done)`
    /// after each batch.
    fn run(
        &mut self,
        gpu: &Gpu,
        images: &[f32],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>> {
        if !images.len().is_multiple_of(self.image_len) {
            return Err(Error::shape(
                "embed",
                format!(
                    "{} values are not a whole number of inputs of {} values",
                    images.len(),
                    self.image_len
                ),
            ));
        }
        let n = images.len() / self.image_len;
        let mut outputs = Vec::with_capacity(n * self.output_len);
        let mut batch = vec![0.0f32; BATCH * self.image_len];
        for start in (0..n).step_by(BATCH) {
            let count = (n - start).min(BATCH);
            let chunk = &images[start * self.image_len..(start + count) * self.image_len];
            batch[..chunk.len()].copy_from_slice(chunk);
            batch[chunk.len()..].fill(0.0);
            self.plan.write_input(gpu, self.input, &batch)?;
            let output = self.plan.step(gpu)?.remove(0);
            outputs.extend_from_slice(&output[..count * self.output_len]);
            progress(start + count);
        }
        Ok(outputs)
    }
}

/// Images per chunk whose network inputs are built at a time: the inputs of a whole folder
/// (6 views of 3 x 224 x 184 values per image by default) would not fit in memory.
const CHUNK: usize = 4 * BATCH;

/// Runs `plan` on the network inputs (see `NetworkSpec::network_input`) of images
/// `[N, 3, H, W]`, each viewed at its base zoom (`None`: all at 1), building the inputs a chunk
/// at a time; calls `progress(images done)`.
fn run_on_views(
    plan: &mut BatchedPlan,
    spec: &NetworkSpec,
    gpu: &Gpu,
    images: &[f32],
    base_zooms: Option<&[f64]>,
    mut detector: Option<&mut FaceDetector>,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<f32>> {
    let len = 3 * spec.trunk.height * spec.trunk.width;
    if !images.len().is_multiple_of(len) {
        return Err(Error::shape(
            "embed",
            format!(
                "{} values are not a whole number of 3 x {} x {} images",
                images.len(),
                spec.trunk.height,
                spec.trunk.width
            ),
        ));
    }
    let n = images.len() / len;
    if let Some(zooms) = base_zooms.filter(|z| z.len() != n) {
        return Err(Error::shape(
            "embed",
            format!("{n} images but {} zooms", zooms.len()),
        ));
    }
    let plain = spec.input_is_image() && base_zooms.is_none();
    let mut outputs = Vec::with_capacity(n * plan.output_len);
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let chunk = &images[start * len..end * len];
        let inputs: Vec<f32> = if plain {
            chunk.to_vec()
        } else {
            let mut inputs = Vec::with_capacity((end - start) * plan.image_len);
            for (i, image) in chunk.chunks_exact(len).enumerate() {
                let face = match detector.as_deref_mut() {
                    Some(detector) => most_confident_face(detector, gpu, spec, image)?,
                    None => None,
                };
                let zoom = base_zooms.map_or(1.0, |z| z[start + i]);
                inputs.extend(spec.network_input(image, zoom, face)?);
            }
            inputs
        };
        outputs.extend(plan.run(gpu, &inputs, &mut |done| progress(start + done))?);
    }
    Ok(outputs)
}

/// The box of the face the detector is surest of in a photo at `spec`'s input size, if any.
fn most_confident_face(
    detector: &mut FaceDetector,
    gpu: &Gpu,
    spec: &NetworkSpec,
    image: &[f32],
) -> Result<Option<Rect>> {
    let photo =
        wgnn_models::imaging::RgbImage::new(spec.trunk.width, spec.trunk.height, image.to_vec())?;
    Ok(detector
        .detect(gpu, &photo)?
        .into_iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(rect, _)| rect))
}

/// The first stage of an aligned network: the descriptor of each image as it is, and the
/// regressor that turns it into the zoom to view the image at.
struct AlignmentStage {
    descriptors: BatchedPlan,
    spec: NetworkSpec,
    regressor: ZoomRegressor,
    range: [f64; 2],
}

impl AlignmentStage {
    fn compile(
        gpu: &Gpu,
        spec: &NetworkSpec,
        params: &ParamStore,
        regressor: Option<&ZoomRegressor>,
    ) -> Result<Option<Self>> {
        let Some(range) = spec.align else {
            return Ok(None);
        };
        let regressor = regressor.ok_or_else(|| {
            Error::Invalid("the network aligns zooms but no zoom regressor was given".into())
        })?;
        let stage = spec.alignment_stage();
        if regressor.weight.len() != stage.descriptor_len()? {
            return Err(Error::shape(
                "zoom alignment",
                format!(
                    "the regressor has {} weights for descriptors of {} values",
                    regressor.weight.len(),
                    stage.descriptor_len()?
                ),
            ));
        }
        let item = stage.input_item();
        let descriptors = BatchedPlan::compile(gpu, &item, params, |g, x| {
            let trunk = stage.build_trunk(g, x)?;
            stage.build_descriptor(g, trunk)
        })?;
        Ok(Some(Self {
            descriptors,
            spec: stage,
            regressor: regressor.clone(),
            range,
        }))
    }

    /// The zoom each image is to be viewed at.
    fn zooms(
        &mut self,
        gpu: &Gpu,
        images: &[f32],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f64>> {
        let descriptors = run_on_views(
            &mut self.descriptors,
            &self.spec,
            gpu,
            images,
            None,
            None,
            progress,
        )?;
        Ok(descriptors
            .chunks_exact(self.descriptors.output_len)
            .map(|d| self.regressor.view_zoom(d, self.range))
            .collect())
    }
}

/// A compiled plan from RGB images `[N, 3, H, W]` in [0, 1] to one output per image: the trunk
/// maps, the descriptors or the embeddings. Images are turned into the network's inputs (each
/// zoomed view and, with mirroring, its mirror image) before they run.
pub struct ImageRunner {
    inner: BatchedPlan,
    spec: NetworkSpec,
    alignment: Option<AlignmentStage>,
    /// The face ResNet's face detector (the boxes its alignment starts from).
    detector: Option<FaceDetector>,
}

impl ImageRunner {
    fn compile(
        gpu: &Gpu,
        spec: &NetworkSpec,
        params: &ParamStore,
        regressor: Option<&ZoomRegressor>,
        build: impl FnOnce(&mut Graph, NodeId) -> Result<NodeId>,
    ) -> Result<Self> {
        spec.validate()?;
        let item = spec.input_item();
        let detector = match spec.trunk.architecture {
            TrunkArchitecture::FaceResNet => Some(FaceDetector::new(
                gpu,
                wgnn_assets::MMOD_FACE_DETECTOR_SAFETENSORS,
                spec.trunk.width,
                spec.trunk.height,
            )?),
            TrunkArchitecture::SqueezeNet => None,
        };
        Ok(Self {
            inner: BatchedPlan::compile(gpu, &item, params, build)?,
            spec: spec.clone(),
            alignment: AlignmentStage::compile(gpu, spec, params, regressor)?,
            detector,
        })
    }

    /// The frozen trunk: images to trunk maps (`NetworkSpec::trunk_len` values per image), at
    /// zoom 1 or at the zooms given to `run_at` (the spec's own alignment is not applied).
    pub fn trunk(gpu: &Gpu, spec: &NetworkSpec, trunk_weights: &ParamStore) -> Result<Self> {
        let spec = NetworkSpec {
            align: None,
            ..spec.clone()
        };
        Self::compile(gpu, &spec, trunk_weights, None, |g, x| {
            spec.build_trunk(g, x)
        })
    }

    /// The frozen part of the network, trunk and descriptor: images to descriptors `[N, d]`,
    /// what training caches (the descriptor has no parameters). `regressor` aligns the zoom
    /// when the spec asks for alignment.
    pub fn descriptors(
        gpu: &Gpu,
        spec: &NetworkSpec,
        trunk_weights: &ParamStore,
        regressor: Option<&ZoomRegressor>,
    ) -> Result<Self> {
        Self::compile(gpu, spec, trunk_weights, regressor, |g, x| {
            let trunk = spec.build_trunk(g, x)?;
            spec.build_descriptor(g, trunk)
        })
    }

    /// The whole network: images to embeddings `[N, D]`. `head` holds the head's parameters;
    /// the trunk's are the embedded weights.
    pub fn embeddings(
        gpu: &Gpu,
        spec: &NetworkSpec,
        head: &ParamStore,
        regressor: Option<&ZoomRegressor>,
    ) -> Result<Self> {
        let mut params = trunk_weights(gpu, spec)?;
        for (name, tensor) in head.iter() {
            params.insert(name, tensor.clone());
        }
        Self::compile(gpu, spec, &params, regressor, |g, x| {
            let trunk = spec.build_trunk(g, x)?;
            spec.build_head(g, trunk)
        })
    }

    /// Values per image of the output.
    pub fn output_len(&self) -> usize {
        self.inner.output_len
    }

    /// Trunk passes per image, the unit of `run`'s progress: the network's, plus the
    /// alignment stage's.
    pub fn passes_per_image(&self) -> usize {
        self.spec.passes() + self.alignment.as_ref().map_or(0, |a| a.spec.passes())
    }

    /// Runs RGB images `[N, 3, H, W]` in [0, 1] (aligning their zooms when the network does),
    /// calling `progress(passes done)` after each batch.
    pub fn run(
        &mut self,
        gpu: &Gpu,
        images: &[f32],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>> {
        let passes = self.spec.passes();
        let Some(alignment) = &mut self.alignment else {
            return run_on_views(
                &mut self.inner,
                &self.spec,
                gpu,
                images,
                None,
                self.detector.as_mut(),
                &mut |done| progress(done * passes),
            );
        };
        let first = alignment.spec.passes();
        let zooms = alignment.zooms(gpu, images, &mut |done| progress(done * first))?;
        let skipped = zooms.len() * first;
        run_on_views(
            &mut self.inner,
            &self.spec,
            gpu,
            images,
            Some(&zooms),
            self.detector.as_mut(),
            &mut |done| progress(skipped + done * passes),
        )
    }

    /// Runs images each viewed at its own zoom (`zooms`, one per image) instead of aligning
    /// them; calls `progress(images done)`.
    pub fn run_at(
        &mut self,
        gpu: &Gpu,
        images: &[f32],
        zooms: &[f64],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>> {
        run_on_views(
            &mut self.inner,
            &self.spec,
            gpu,
            images,
            Some(zooms),
            self.detector.as_mut(),
            progress,
        )
    }
}

/// The head's trained part alone: descriptors (see `ImageRunner::descriptors`) to embeddings
/// `[N, D]`.
pub struct ProjectionRunner {
    inner: BatchedPlan,
}

impl ProjectionRunner {
    pub fn new(gpu: &Gpu, spec: &NetworkSpec, head: &ParamStore) -> Result<Self> {
        spec.validate()?;
        let item = [spec.descriptor_len()?];
        Ok(Self {
            inner: BatchedPlan::compile(gpu, &item, head, |g, x| spec.build_projection(g, x))?,
        })
    }

    pub fn run(&mut self, gpu: &Gpu, descriptors: &[f32]) -> Result<Vec<f32>> {
        self.inner.run(gpu, descriptors, &mut |_| {})
    }
}

/// The head's fixed part: trunk maps to descriptors `[N, d]` (see
/// `NetworkSpec::build_descriptor`).
pub struct DescriptorRunner {
    inner: BatchedPlan,
}

impl DescriptorRunner {
    pub fn new(gpu: &Gpu, spec: &NetworkSpec) -> Result<Self> {
        spec.validate()?;
        let item = [spec.trunk_len()?];
        Ok(Self {
            inner: BatchedPlan::compile(gpu, &item, &ParamStore::new(), |g, x| {
                spec.build_descriptor(g, x)
            })?,
        })
    }

    pub fn run(&mut self, gpu: &Gpu, maps: &[f32]) -> Result<Vec<f32>> {
        self.inner.run(gpu, maps, &mut |_| {})
    }
}
