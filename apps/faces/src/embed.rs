//! Running the network on photos (`ImageRunner`: to the trunk's outputs, to descriptors, which
//! training precomputes, or to embeddings) and the head's parts on their own. All are compiled
//! plans of a fixed batch size; a short last batch is padded with zeros and the padding rows are
//! dropped. Before a photo runs, dlib's face detector finds its face and the aligned chip is cut
//! (`NetworkSpec::network_input`).

use super::network::{aligned_chip, NetworkSpec};
use wgnn::error::{Error, Result};
use wgnn::graph::{Graph, NodeId, Plan, PlanSpec, Profile};
use wgnn::nn::ParamStore;
use wgnn::Gpu;
use wgnn_models::face_detection::FaceDetector;
use wgnn_models::face_landmarks::Rect;
use wgnn_models::imaging::RgbImage;

/// Photos per trunk dispatch (each one or two 150x150 chips): large enough to amortise a
/// submission, small enough to keep a batch's activations small.
pub const BATCH: usize = 8;

/// The embedded weights of the frozen trunk (dlib's face ResNet), loaded once per call site.
pub fn trunk_weights(gpu: &Gpu) -> Result<ParamStore> {
    wgnn_assets::face_resnet_weights(gpu)
}

/// A compiled plan from a batch of `BATCH` inputs to one output per input.
pub(crate) struct BatchedPlan {
    plan: Plan,
    input: NodeId,
    image_len: usize,
    output_len: usize,
}

impl BatchedPlan {
    /// `build` maps the input node `[BATCH, item...]` to the output node.
    pub(crate) fn compile(
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

    /// The kernels of one batch (`Plan::profile`), on the inputs of the last batch run.
    pub(crate) fn profile(&mut self, gpu: &Gpu, repeats: usize) -> Result<Profile> {
        self.plan.profile(gpu, repeats)
    }

    /// Runs `images` (`[N, item...]` row-major) through the plan, calling `progress(done)`
    /// after each batch.
    pub(crate) fn run(
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

/// Photos per chunk whose network inputs are built at a time: the inputs of a whole folder
/// would not fit in memory.
const CHUNK: usize = 4 * BATCH;

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

/// A compiled plan from RGB photos `[N, 3, H, W]` in [0, 1] (at the spec's input size) to one
/// output per photo: the trunk's outputs, the descriptors or the embeddings. Each photo's face is
/// detected and its chip (with, with mirroring, the chip's mirror image) is what runs.
pub struct ImageRunner {
    inner: BatchedPlan,
    spec: NetworkSpec,
    /// dlib's face detector (the boxes the alignment starts from).
    detector: FaceDetector,
}

impl ImageRunner {
    fn compile(
        gpu: &Gpu,
        spec: &NetworkSpec,
        params: &ParamStore,
        build: impl FnOnce(&mut Graph, NodeId) -> Result<NodeId>,
    ) -> Result<Self> {
        spec.validate()?;
        let detector = FaceDetector::new(
            gpu,
            wgnn_assets::MMOD_FACE_DETECTOR_SAFETENSORS,
            spec.trunk.width,
            spec.trunk.height,
        )?;
        Ok(Self {
            inner: BatchedPlan::compile(gpu, &spec.input_item(), params, build)?,
            spec: spec.clone(),
            detector,
        })
    }

    /// The frozen trunk: photos to the trunk's outputs (`NetworkSpec::trunk_len` values per
    /// photo).
    pub fn trunk(gpu: &Gpu, spec: &NetworkSpec, trunk_weights: &ParamStore) -> Result<Self> {
        Self::compile(gpu, spec, trunk_weights, |g, x| spec.build_trunk(g, x))
    }

    /// The frozen part of the network, trunk and descriptor: photos to descriptors `[N, d]`,
    /// what training caches (the descriptor has no parameters).
    pub fn descriptors(gpu: &Gpu, spec: &NetworkSpec, trunk_weights: &ParamStore) -> Result<Self> {
        Self::compile(gpu, spec, trunk_weights, |g, x| {
            let trunk = spec.build_trunk(g, x)?;
            spec.build_descriptor(g, trunk)
        })
    }

    /// The whole network: photos to embeddings `[N, D]`. `head` holds the head's parameters;
    /// the trunk's are the embedded weights.
    pub fn embeddings(gpu: &Gpu, spec: &NetworkSpec, head: &ParamStore) -> Result<Self> {
        let mut params = trunk_weights(gpu)?;
        for (name, tensor) in head.iter() {
            params.insert(name, tensor.clone());
        }
        Self::compile(gpu, spec, &params, |g, x| {
            let trunk = spec.build_trunk(g, x)?;
            spec.build_head(g, trunk)
        })
    }

    /// The kernels of one batch of the network (`Plan::profile`), on the last batch run.
    pub fn profile(&mut self, gpu: &Gpu, repeats: usize) -> Result<Profile> {
        self.inner.profile(gpu, repeats)
    }

    /// Values per photo of the output.
    pub fn output_len(&self) -> usize {
        self.inner.output_len
    }

    /// Trunk passes per photo, the unit of `run`'s progress.
    pub fn passes_per_image(&self) -> usize {
        self.spec.passes()
    }

    /// Runs RGB photos `[N, 3, H, W]` in [0, 1], building their network inputs a chunk at a
    /// time; calls `progress(passes done)` after each batch.
    pub fn run(
        &mut self,
        gpu: &Gpu,
        images: &[f32],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>> {
        let spec = &self.spec;
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
        let passes = spec.passes();
        let mut outputs = Vec::with_capacity(n * self.inner.output_len);
        for start in (0..n).step_by(CHUNK) {
            let end = (start + CHUNK).min(n);
            let mut inputs = Vec::with_capacity((end - start) * self.inner.image_len);
            for image in images[start * len..end * len].chunks_exact(len) {
                let face = most_confident_face(&mut self.detector, gpu, spec, image)?;
                inputs.extend(spec.network_input(image, face)?);
            }
            outputs.extend(
                self.inner
                    .run(gpu, &inputs, &mut |done| progress((start + done) * passes))?,
            );
        }
        Ok(outputs)
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
        let item = [spec.descriptor_len()];
        Ok(Self {
            inner: BatchedPlan::compile(gpu, &item, head, |g, x| spec.build_projection(g, x))?,
        })
    }

    pub fn run(&mut self, gpu: &Gpu, descriptors: &[f32]) -> Result<Vec<f32>> {
        self.inner.run(gpu, descriptors, &mut |_| {})
    }
}

/// Aligns photos as `train_siamese` does before the face ResNet: the photo resized to the
/// network's input size, dlib's detector, the five landmarks and the 150x150 chip.
pub struct FaceAligner {
    spec: NetworkSpec,
    detector: FaceDetector,
}

impl FaceAligner {
    /// The alignment of the default network (`NetworkSpec::default`).
    pub fn new(gpu: &Gpu) -> Result<Self> {
        let spec = NetworkSpec::default();
        let detector = FaceDetector::new(
            gpu,
            wgnn_assets::MMOD_FACE_DETECTOR_SAFETENSORS,
            spec.trunk.width,
            spec.trunk.height,
        )?;
        Ok(Self { spec, detector })
    }

    /// The aligned face chip of the photo at `path`, RGB in [0, 1].
    pub fn chip(&mut self, gpu: &Gpu, path: &std::path::Path) -> Result<RgbImage> {
        let photo = crate::dataset::load_image(path, crate::commands::preprocess_of(&self.spec))?;
        let face = most_confident_face(&mut self.detector, gpu, &self.spec, &photo)?;
        let side = wgnn_models::face_resnet::CHIP_SIZE;
        let chip = aligned_chip(self.spec.trunk.width, self.spec.trunk.height, &photo, face)?;
        RgbImage::new(side, side, chip)
    }
}

/// Embeds photos with a model's network: the face design (detector, chip, face ResNet, head),
/// or a convolutional network on the photos as they are loaded (`Network::preprocess`).
pub enum ModelEmbedder {
    FaceResNet(Box<ImageRunner>),
    Cnn(Box<BatchedPlanRunner>),
}

/// A convolutional network's embeddings of images at its input size.
pub struct BatchedPlanRunner(BatchedPlan);

impl ModelEmbedder {
    pub fn new(gpu: &Gpu, model: &crate::model::SiameseModel) -> Result<Self> {
        match &model.network {
            crate::model::Network::FaceResNet(spec) => Ok(ModelEmbedder::FaceResNet(Box::new(
                ImageRunner::embeddings(gpu, spec, &model.params)?,
            ))),
            crate::model::Network::Cnn(spec) => {
                let item = [spec.channels, spec.input, spec.input];
                let plan = BatchedPlan::compile(gpu, &item, &model.params, |g, x| {
                    spec.build_folded(g, x)
                })?;
                Ok(ModelEmbedder::Cnn(Box::new(BatchedPlanRunner(plan))))
            }
        }
    }

    /// Network passes per photo (the face design runs the chip and its mirror image).
    pub fn passes_per_image(&self) -> usize {
        match self {
            ModelEmbedder::FaceResNet(runner) => runner.passes_per_image(),
            ModelEmbedder::Cnn(_) => 1,
        }
    }

    /// The embeddings of photos `[N, C, H, W]` loaded with the network's preprocessing; calls
    /// `progress(passes done)` as batches finish.
    pub fn run(
        &mut self,
        gpu: &Gpu,
        images: &[f32],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<f32>> {
        match self {
            ModelEmbedder::FaceResNet(runner) => runner.run(gpu, images, progress),
            ModelEmbedder::Cnn(runner) => runner.0.run(gpu, images, progress),
        }
    }
}
