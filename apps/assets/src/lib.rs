//! The files the applications embed, so that `classify`, `stylize` and `train_siamese` work on
//! a fresh machine with no arguments and no downloads. Provenance and licences:
//! `assets/SOURCES.md` at the repository's root, where the files live.
//!
//! Only what the defaults use is embedded (about 33 MB): the SqueezeNet v1.1 weights, the
//! ImageNet class names, one content photo and one style painting, and for face recognition
//! dlib's face ResNet, face detector and landmark predictor. The other pictures in `assets/`
//! (coffee.png, astronaut.png, scream.jpg, brick.png) stay files for the README and the tests.

use std::path::Path;
use std::sync::OnceLock;

use wgnn::error::{Error, Result};
use wgnn::nn::ParamStore;
use wgnn::Gpu;
use wgnn_models::imaging::{io, RgbImage};
use wgnn_models::Architecture;

/// SqueezeNet v1.1 ImageNet weights (safetensors, f32, torchvision names `features.N.*` and
/// `classifier.1.*`, OIHW kernels). Its `__metadata__` states the input preprocessing, which is
/// [`wgnn_models::imaging::preprocess::Preprocess::SQUEEZENET`].
pub const SQUEEZENET1_1_SAFETENSORS: &[u8] =
    include_bytes!("../../../assets/squeezenet1_1.safetensors");

/// dlib's face recognition ResNet (`dlib_face_recognition_resnet_model_v1`, CC0), converted by
/// `scripts/dlib_face_resnet_to_safetensors.py`: f32, each affine layer folded into its
/// convolution, OIHW kernels; [`wgnn_models::face_resnet`] builds the network.
pub const DLIB_FACE_RESNET_SAFETENSORS: &[u8] =
    include_bytes!("../../../assets/dlib_face_resnet.safetensors");

/// dlib's 5-point face landmark predictor (`shape_predictor_5_face_landmarks`, CC0), converted
/// by `scripts/dlib_shape_predictor_to_safetensors.py`; [`wgnn_models::face_landmarks`] runs it.
pub const SHAPE_PREDICTOR_5_SAFETENSORS: &[u8] =
    include_bytes!("../../../assets/shape_predictor_5.safetensors");

/// dlib's CNN face detector (`mmod_human_face_detector`, CC0), converted by
/// `scripts/dlib_mmod_to_safetensors.py`; [`wgnn_models::face_detection`] runs it.
pub const MMOD_FACE_DETECTOR_SAFETENSORS: &[u8] =
    include_bytes!("../../../assets/mmod_face_detector.safetensors");

/// The 1000 ImageNet class names, one a line, in the order of the classifier's outputs.
pub const IMAGENET_CLASSES_TXT: &str = include_str!("../../../assets/imagenet_classes.txt");

/// File name of the default content photo (a cat, 451x300, CC0).
pub const DEFAULT_CONTENT_NAME: &str = "chelsea.png";
/// The default content photo, encoded.
pub const DEFAULT_CONTENT: &[u8] = include_bytes!("../../../assets/chelsea.png");

/// File name of the default style painting (Van Gogh, The Starry Night, 752x600).
pub const DEFAULT_STYLE_NAME: &str = "starry_night.jpg";
/// The default style painting, encoded.
pub const DEFAULT_STYLE: &[u8] = include_bytes!("../../../assets/starry_night.jpg");

/// The photos `visualize` looks at by default: (file name, encoded bytes). The pictures above
/// and 35 small public-domain or CC0 photos (`assets/photos`, credited in its SOURCES.md).
pub const PHOTOS: &[(&str, &[u8])] = &[
    (
        "astronaut.png",
        include_bytes!("../../../assets/astronaut.png"),
    ),
    ("brick.png", include_bytes!("../../../assets/brick.png")),
    ("chelsea.png", DEFAULT_CONTENT),
    ("coffee.png", include_bytes!("../../../assets/coffee.png")),
    ("scream.jpg", include_bytes!("../../../assets/scream.jpg")),
    ("starry_night.jpg", DEFAULT_STYLE),
    (
        "photos/angelfish.jpg",
        include_bytes!("../../../assets/photos/angelfish.jpg"),
    ),
    (
        "photos/ascent.jpg",
        include_bytes!("../../../assets/photos/ascent.jpg"),
    ),
    (
        "photos/citrus_fruits.jpg",
        include_bytes!("../../../assets/photos/citrus_fruits.jpg"),
    ),
    (
        "photos/city_skyline.jpg",
        include_bytes!("../../../assets/photos/city_skyline.jpg"),
    ),
    (
        "photos/claw_hammer.jpg",
        include_bytes!("../../../assets/photos/claw_hammer.jpg"),
    ),
    (
        "photos/coral_reef.jpg",
        include_bytes!("../../../assets/photos/coral_reef.jpg"),
    ),
    (
        "photos/cork.jpg",
        include_bytes!("../../../assets/photos/cork.jpg"),
    ),
    (
        "photos/courtyard_dog.jpg",
        include_bytes!("../../../assets/photos/courtyard_dog.jpg"),
    ),
    (
        "photos/dandelions.jpg",
        include_bytes!("../../../assets/photos/dandelions.jpg"),
    ),
    (
        "photos/desert_dawn.jpg",
        include_bytes!("../../../assets/photos/desert_dawn.jpg"),
    ),
    (
        "photos/frying_pan.jpg",
        include_bytes!("../../../assets/photos/frying_pan.jpg"),
    ),
    (
        "photos/garden_path.jpg",
        include_bytes!("../../../assets/photos/garden_path.jpg"),
    ),
    (
        "photos/goldfish.jpg",
        include_bytes!("../../../assets/photos/goldfish.jpg"),
    ),
    (
        "photos/grass.jpg",
        include_bytes!("../../../assets/photos/grass.jpg"),
    ),
    (
        "photos/gravel.jpg",
        include_bytes!("../../../assets/photos/gravel.jpg"),
    ),
    (
        "photos/honey_bee.jpg",
        include_bytes!("../../../assets/photos/honey_bee.jpg"),
    ),
    (
        "photos/hotel_room.jpg",
        include_bytes!("../../../assets/photos/hotel_room.jpg"),
    ),
    (
        "photos/hubble_deep_field.jpg",
        include_bytes!("../../../assets/photos/hubble_deep_field.jpg"),
    ),
    (
        "photos/igloo.jpg",
        include_bytes!("../../../assets/photos/igloo.jpg"),
    ),
    (
        "photos/milk_pail.jpg",
        include_bytes!("../../../assets/photos/milk_pail.jpg"),
    ),
    (
        "photos/moose.jpg",
        include_bytes!("../../../assets/photos/moose.jpg"),
    ),
    (
        "photos/multimeter.jpg",
        include_bytes!("../../../assets/photos/multimeter.jpg"),
    ),
    (
        "photos/old_lab.jpg",
        include_bytes!("../../../assets/photos/old_lab.jpg"),
    ),
    (
        "photos/pliers.jpg",
        include_bytes!("../../../assets/photos/pliers.jpg"),
    ),
    (
        "photos/retina.jpg",
        include_bytes!("../../../assets/photos/retina.jpg"),
    ),
    (
        "photos/rocket.jpg",
        include_bytes!("../../../assets/photos/rocket.jpg"),
    ),
    (
        "photos/roebling_bridge.jpg",
        include_bytes!("../../../assets/photos/roebling_bridge.jpg"),
    ),
    (
        "photos/sf_dusk.jpg",
        include_bytes!("../../../assets/photos/sf_dusk.jpg"),
    ),
    (
        "photos/solar_cooker.jpg",
        include_bytes!("../../../assets/photos/solar_cooker.jpg"),
    ),
    (
        "photos/solar_panels.jpg",
        include_bytes!("../../../assets/photos/solar_panels.jpg"),
    ),
    (
        "photos/teacup.jpg",
        include_bytes!("../../../assets/photos/teacup.jpg"),
    ),
    (
        "photos/venice_piazzetta.jpg",
        include_bytes!("../../../assets/photos/venice_piazzetta.jpg"),
    ),
    (
        "photos/weir.jpg",
        include_bytes!("../../../assets/photos/weir.jpg"),
    ),
    (
        "photos/windmill.jpg",
        include_bytes!("../../../assets/photos/windmill.jpg"),
    ),
    (
        "photos/yellow_perch.jpg",
        include_bytes!("../../../assets/photos/yellow_perch.jpg"),
    ),
];

/// The photos `visualize` looks at by default, decoded and named `<embedded NAME>`.
pub fn photos() -> Result<Vec<(String, RgbImage)>> {
    PHOTOS
        .iter()
        .map(|(name, bytes)| {
            let name = format!("<embedded {name}>");
            Ok((name.clone(), io::decode(bytes, &name)?))
        })
        .collect()
}

/// The ImageNet class names: `imagenet_classes()[i]` names classifier output `i`.
pub fn imagenet_classes() -> &'static [&'static str] {
    static CLASSES: OnceLock<Vec<&'static str>> = OnceLock::new();
    CLASSES.get_or_init(|| IMAGENET_CLASSES_TXT.lines().collect())
}

/// The default content photo, decoded.
pub fn default_content() -> Result<RgbImage> {
    io::decode(
        DEFAULT_CONTENT,
        format!("<embedded {DEFAULT_CONTENT_NAME}>"),
    )
}

/// The default style painting, decoded.
pub fn default_style() -> Result<RgbImage> {
    io::decode(DEFAULT_STYLE, format!("<embedded {DEFAULT_STYLE_NAME}>"))
}

/// The weights of a backbone: those of `path` when given, else SqueezeNet's embedded ones;
/// VGG has no embedded weights and needs a file (`--weights`).
pub fn backbone_weights(gpu: &Gpu, model: Architecture, path: Option<&Path>) -> Result<ParamStore> {
    match (model, path) {
        (_, Some(path)) => model.load_weights_file(gpu, path),
        (Architecture::SqueezeNet, None) => model.load_weights_bytes(
            gpu,
            "<embedded squeezenet1_1.safetensors>",
            SQUEEZENET1_1_SAFETENSORS,
        ),
        (_, None) => Err(Error::Invalid(format!(
            "{} needs --weights FILE: a safetensors file of torchvision's state_dict (scripts/export_vgg.py writes one)",
            model.name()
        ))),
    }
}

/// dlib's face recognition ResNet with its embedded weights.
pub fn face_resnet_weights(gpu: &Gpu) -> Result<ParamStore> {
    wgnn_models::face_resnet::load_weights(
        gpu,
        "<embedded dlib_face_resnet.safetensors>",
        DLIB_FACE_RESNET_SAFETENSORS,
    )
}
