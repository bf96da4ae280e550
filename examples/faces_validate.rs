//! Validation of face-descriptor designs on the training identities only (see docs/faces.md).
//!
//! `faces_validate features --data DIR --holdout K --kinds KIND,... --out FEATURES` reads only
//! the identities that `train_siamese train --holdout-identities K` trains on (the last K are
//! never opened), runs the frozen SqueezeNet (`width=184 height=224` by default, image and
//! mirror image) on each variant kind of each image, and stores fire3-fire9 average-pooled
//! (`gem=P`: pooled by the generalised mean of exponent P) to several grids.
//!
//! `faces_validate dump --data DIR --out PNG` draws a few images with their `mild`, `pert`,
//! `full1` and `cam` variants.
//!
//! Variant kinds (`--kinds`, comma-separated): `orig`; `augN`, `extN`, `fullN`: variant N of the
//! training augmentation `shift,brightness`, `shift,zoom,brightness,gamma` and all of
//! `shift,zoom,brightness,gamma,blur,light,noise`; `pert` and `mild` (half as strong): the
//! perturbation below; `cam`: a family training never draws (a low-resolution camera,
//! sharpening, vignetting); `scale`: half of the images zoomed in by 15-35 % (photographed
//! closer); `tiltp`: every image turned by 5-12 degrees; `wideN`: `fullN` then zoomed by a
//! factor log-uniform in [1/1.2, 1.35]; `distN`, `tiltN`: variant N of the library's
//! augmentation with `distance` (and `tilt`); `eraseN`: `distN` with a random rectangle of
//! noise (random erasing); `KIND@VIEW`: a fixed view of each (`test_view`:
//! zoomed by 8 % or by any factor `zF`, or shifted).
//!
//! `faces_validate eval --features FEATURES[,FEATURES...] [key=value...]` then scores a design
//! on many random splits of those identities into `train` training and the rest validation
//! identities: the whitening is computed from the split's training identities alone (original
//! images plus the augmentation variants asked for); the validation identities are embedded and
//! scored by one-shot identification and EER on each probe kind. Keys:
//! `levels=fire5:4x3,fire7:1x1`, `variants=orig,aug1` (the training variants),
//! `probes=orig,pert`, `dim=128`, `shrink=0.25`, `sqrt=0|1` (signed square root of pooled cells
//! before the L2 norm), `cellnorm=0|1` (each grid cell's channels L2-normalised on their own
//! first), `splits=20`, `train=20`, `mirror=1`, `tta=z+,z-` (sum each kind's
//! descriptor with those of its `KIND@VIEW` kinds, as the network's zoomed views do),
//! `width=184 height=224` (the features' input size), `align=K` (per image, the view of zoom
//! 1.077^k, k in -K..=K, that `estimator=cos` (nearest the mean training descriptor) or
//! `estimator=reg` (a ridge regression of the zoom, `ridge=0.1`) picks, summed with `spread=1`
//! neighbours; needs the `@z0.8` .. `@z1.25` views); with `estimator=reg soft=1` the zoom is
//! predicted once from the image itself and the views are interpolated to it (a continuous
//! alignment). `per_person=1` also prints, per validation person (`#k`: the k-th identity in
//! natural order, `sk` on ORL), the share of their one-shot decisions as probe of the first
//! probe kind that are wrong, over all splits, the worst first.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::Instant;

use wgnn::faces::align::ZoomRegressor;
use wgnn::faces::augment::{rotated, shifted, zoomed, Augment};
use wgnn::faces::commands::preprocess_of;
use wgnn::faces::dataset::ImageFolder;
use wgnn::faces::embed::{trunk_weights, ImageRunner};
use wgnn::faces::metrics;
use wgnn::faces::network::{
    grid_pooling, HeadSpec, Level, NetworkSpec, TrunkArchitecture, TrunkSpec,
};
use wgnn::faces::whitening::learned_whitening;
use wgnn::rng::Rng;
use wgnn::{Error, Gpu, Result};

#[path = "faces_support/perturb.rs"]
mod perturb;
use perturb::perturb;

const LAYERS: [&str; 7] = [
    "fire3", "fire4", "fire5", "fire6", "fire7", "fire8", "fire9",
];

fn grids(layer: &str) -> Vec<[usize; 2]> {
    if ["fire3", "fire4", "fire5"].contains(&layer) {
        vec![[1, 1], [2, 2], [3, 3], [4, 3], [5, 4], [6, 4], [8, 6]]
    } else {
        vec![[1, 1], [2, 2], [3, 3], [4, 3]]
    }
}

/// The trunk at `width x height` with every stored layer as a level.
fn spec(width: usize, height: usize) -> NetworkSpec {
    NetworkSpec {
        trunk: TrunkSpec {
            architecture: TrunkArchitecture::SqueezeNet,
            width,
            height,
        },
        head: HeadSpec {
            levels: LAYERS
                .iter()
                .map(|l| Level {
                    layer: l.to_string(),
                    grids: vec![[1, 1]],
                })
                .collect(),
            embedding_dim: 128,
        },
        mirror: true,
        zooms: vec![1.0],
        align: None,
    }
}

/// Where each (layer, grid) block lies inside one pass's stored values: offset, length.
fn layout(spec: &NetworkSpec) -> Result<(BTreeMap<(String, [usize; 2]), (usize, usize)>, usize)> {
    let maps = spec.layer_maps()?;
    let mut at = BTreeMap::new();
    let mut offset = 0;
    for (layer, [c, _, _]) in LAYERS.iter().zip(maps) {
        for grid in grids(layer) {
            let len = c * grid[0] * grid[1];
            at.insert((layer.to_string(), grid), (offset, len));
            offset += len;
        }
    }
    Ok((at, offset))
}

/// Average pooling of `[c, h, w]` over `grid_pooling` windows, channel-major like the network;
/// with `gem` = p > 1 the generalised mean `(mean x^p)^(1/p)` instead (the maps are ReLU
/// outputs, so never negative).
fn pool(map: &[f32], [c, h, w]: [usize; 3], grid: [usize; 2], gem: f32, out: &mut Vec<f32>) {
    let p = grid_pooling([h, w], grid);
    let (kh, kw) = (p.kernel[0], p.kernel[1]);
    let (sh, sw) = (p.stride[0], p.stride[1]);
    for ch in 0..c {
        let plane = &map[ch * h * w..][..h * w];
        for r in 0..grid[0] {
            for q in 0..grid[1] {
                let mut s = 0f32;
                for y in r * sh..r * sh + kh {
                    for x in q * sw..q * sw + kw {
                        s += if gem == 1.0 {
                            plane[y * w + x]
                        } else {
                            plane[y * w + x].max(0.0).powf(gem)
                        };
                    }
                }
                out.push((s / (kh * kw) as f32).powf(1.0 / gem));
            }
        }
    }
}

/// A family of changes that training never draws: a camera of 1/2 to 1/3 of the resolution
/// (box-averaged, then bilinear back), its sharpening (unsharp mask, amount 0.5-1.5), and
/// vignetting (the corners 0-30 % darker).
fn camera(image: &[f32], width: usize, height: usize, index: usize) -> Vec<f32> {
    let mut rng = Rng::new(0xCA3E_7A ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let factor = rng.range(2.0, 3.0);
    let amount = rng.range(0.5, 1.5) as f32;
    let vignette = rng.range(0.0, 0.3);
    let (sw, sh) = (
        (width as f64 / factor).round() as usize,
        (height as f64 / factor).round() as usize,
    );
    let mut out = vec![0f32; image.len()];
    for c in 0..3 {
        let plane = &image[c * width * height..][..width * height];
        // Box average down.
        let mut small = vec![0f32; sw * sh];
        for y in 0..sh {
            for x in 0..sw {
                let (y0, y1) = (
                    y * height / sh,
                    ((y + 1) * height / sh).max(y * height / sh + 1),
                );
                let (x0, x1) = (
                    x * width / sw,
                    ((x + 1) * width / sw).max(x * width / sw + 1),
                );
                let mut s = 0.0;
                for yy in y0..y1 {
                    for xx in x0..x1 {
                        s += plane[yy * width + xx];
                    }
                }
                small[y * sw + x] = s / ((y1 - y0) * (x1 - x0)) as f32;
            }
        }
        let at = |x: isize, y: isize| {
            small[y.clamp(0, sh as isize - 1) as usize * sw + x.clamp(0, sw as isize - 1) as usize]
        };
        let mut up = vec![0f32; width * height];
        for y in 0..height {
            for x in 0..width {
                let sx = (x as f64 + 0.5) * sw as f64 / width as f64 - 0.5;
                let sy = (y as f64 + 0.5) * sh as f64 / height as f64 - 0.5;
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
                let (x0, y0) = (x0 as isize, y0 as isize);
                up[y * width + x] = (1.0 - fy) * ((1.0 - fx) * at(x0, y0) + fx * at(x0 + 1, y0))
                    + fy * ((1.0 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1));
            }
        }
        // Unsharp mask with a 3x3 box.
        for y in 0..height {
            for x in 0..width {
                let mut s = 0.0;
                for oy in -1isize..=1 {
                    for ox in -1isize..=1 {
                        let yy = (y as isize + oy).clamp(0, height as isize - 1) as usize;
                        let xx = (x as isize + ox).clamp(0, width as isize - 1) as usize;
                        s += up[yy * width + xx];
                    }
                }
                let v = up[y * width + x];
                let sharp = v + amount * (v - s / 9.0);
                let r2 = ((x as f64 / width as f64 - 0.5).powi(2)
                    + (y as f64 / height as f64 - 0.5).powi(2))
                    / 0.5;
                out[c * width * height + y * width + x] =
                    (sharp * (1.0 - vignette * r2) as f32).clamp(0.0, 1.0);
            }
        }
    }
    out
}

/// The same person photographed closer: half of the images (drawn by index) zoomed in by
/// 15-35 % about the centre, the rest unchanged.
fn closer(image: &[f32], w: usize, h: usize, index: usize) -> Vec<f32> {
    let mut rng = Rng::new(0x5CA1E ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let (near, factor) = (rng.uniform() < 0.5, rng.range(1.15, 1.35));
    if near {
        zoomed(image, w, h, factor)
    } else {
        image.to_vec()
    }
}

/// A training copy at another distance: zoomed by a factor from 1/1.2 to 1.35 (log-uniform).
fn rescaled(image: &[f32], w: usize, h: usize, index: usize, copy: usize) -> Vec<f32> {
    let mut rng = Rng::new(
        0x0DD5CA1E ^ (index as u64 * 31 + copy as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let factor = rng.range((1.0f64 / 1.2).ln(), 1.35f64.ln()).exp();
    zoomed(image, w, h, factor)
}

/// A fixed view of an image for test-time averaging (`KIND@VIEW`): `z+`/`z-` zoomed in/out by
/// 8 %, `x+`/`x-`/`y+`/`y-` shifted by 4 % of the side; `` the image itself.
/// Random erasing (Zhong et al., 2017): a rectangle of 4-15 % of the image, of aspect ratio
/// log-uniform in [0.3, 3.3], anywhere, filled with uniform noise (the same in every channel),
/// as glasses, a hand or a reflection would hide part of a face.
fn erased(image: &[f32], w: usize, h: usize, index: usize, copy: usize) -> Vec<f32> {
    let mut rng =
        Rng::new(0xE1A5E ^ ((index * 16 + copy) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let area = rng.range(0.04, 0.15) * (w * h) as f64;
    let aspect = rng.range(0.3f64.ln(), 3.3f64.ln()).exp();
    let rw = ((area * aspect).sqrt().round() as usize).clamp(1, w);
    let rh = ((area / aspect).sqrt().round() as usize).clamp(1, h);
    let x0 = (rng.uniform() * (w - rw + 1) as f64) as usize;
    let y0 = (rng.uniform() * (h - rh + 1) as f64) as usize;
    let mut out = image.to_vec();
    let channels = image.len() / (w * h);
    for y in y0..y0 + rh {
        for x in x0..x0 + rw {
            let value = rng.uniform() as f32;
            for c in 0..channels {
                out[(c * h + y) * w + x] = value;
            }
        }
    }
    out
}

fn test_view(image: &[f32], w: usize, h: usize, view: &str) -> Vec<f32> {
    let dx = (0.04 * w as f64).round() as isize;
    let dy = (0.04 * h as f64).round() as isize;
    match view {
        "" => image.to_vec(),
        "z+" => zoomed(image, w, h, 1.08),
        "z-" => zoomed(image, w, h, 1.0 / 1.08),
        "x+" => shifted(image, w, h, dx, 0),
        "x-" => shifted(image, w, h, -dx, 0),
        "y+" => shifted(image, w, h, 0, dy),
        "y-" => shifted(image, w, h, 0, -dy),
        _ => match view.strip_prefix('z').and_then(|f| f.parse::<f64>().ok()) {
            Some(factor) => zoomed(image, w, h, factor),
            None => panic!("unknown view {view}"),
        },
    }
}

fn features(args: &BTreeMap<String, String>) -> Result<()> {
    let data = &args["data"];
    let holdout: usize = args["holdout"].parse().unwrap();
    let out = &args["out"];
    let folder = ImageFolder::open(data)?;
    let (training, _) = folder.split_holdout(holdout)?;
    let size = |key: &str, default: usize| args.get(key).map_or(default, |v| v.parse().unwrap());
    let spec = spec(size("width", 184), size("height", 224));
    let gem: f32 = args.get("gem").map_or(1.0, |v| v.parse().unwrap());
    let preprocess = preprocess_of(&spec);
    let images = training.load(preprocess)?;
    let gpu = Gpu::new()?;
    let weights = trunk_weights(&gpu, &spec)?;
    let mut runner = ImageRunner::trunk(&gpu, &spec, &weights)?;
    let maps = spec.layer_maps()?;
    let pass_len = spec.pass_len()?;
    let (_, stored) = layout(&spec)?;
    let augment = Augment::parse("shift,brightness", 3)?;
    let extended = Augment::parse("shift,zoom,brightness,gamma", 3)?;
    let full = Augment::parse("shift,zoom,brightness,gamma,blur,light,noise", 3)?;
    let distance = Augment::parse("shift,zoom,brightness,gamma,blur,light,noise,distance", 9)?;
    let tilted = Augment::parse(
        "shift,zoom,brightness,gamma,blur,light,noise,distance,tilt",
        9,
    )?;
    let (w, h) = (spec.trunk.width, spec.trunk.height);
    let n = images.len();
    let kinds: Vec<String> = args["kinds"].split(',').map(str::to_string).collect();
    let mut values = Vec::with_capacity(kinds.len() * n * 2 * stored);
    for kind in &kinds {
        let started = Instant::now();
        let mut inputs = Vec::with_capacity(images.data.len());
        for i in 0..n {
            let image = images.image(i);
            let (kind, view) = kind.split_once('@').unwrap_or((kind, ""));
            let number = |prefix: &str| kind.strip_prefix(prefix).map(|v| v.parse().unwrap());
            let base = match kind {
                "orig" => image.to_vec(),
                "pert" => perturb(image, w, h, i, false),
                "mild" => perturb(image, w, h, i, true),
                "cam" => camera(image, w, h, i),
                "scale" => closer(image, w, h, i),
                "tiltp" => {
                    let mut rng = Rng::new(0x7117 ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    let degrees =
                        rng.range(5.0, 12.0) * if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
                    rotated(image, w, h, degrees)
                }
                _ => match (number("aug"), number("ext"), number("full")) {
                    (Some(v), _, _) => augment.variant(image, w, h, v, i, 1),
                    (_, Some(v), _) => extended.variant(image, w, h, v, i, 1),
                    (_, _, Some(v)) => full.variant(image, w, h, v, i, 1),
                    _ => match (number("wide"), number("dist")) {
                        _ if number("erase").is_some() => {
                            let v = number("erase").unwrap();
                            erased(&distance.variant(image, w, h, v, i, 1), w, h, i, v)
                        }
                        (Some(v), _) => rescaled(&full.variant(image, w, h, v, i, 1), w, h, i, v),
                        (_, Some(v)) => distance.variant(image, w, h, v, i, 1),
                        _ if number("tilt").is_some() => {
                            tilted.variant(image, w, h, number("tilt").unwrap(), i, 1)
                        }
                        _ => panic!("unknown variant kind {kind}"),
                    },
                },
            };
            inputs.extend(test_view(&base, w, h, view));
        }
        let trunk = runner.run(&gpu, &inputs, &mut |_| {})?;
        for per_image in trunk.chunks_exact(2 * pass_len) {
            for pass in per_image.chunks_exact(pass_len) {
                let mut offset = 0;
                for (layer, dims) in LAYERS.iter().zip(&maps) {
                    let len: usize = dims.iter().product();
                    for grid in grids(layer) {
                        pool(&pass[offset..offset + len], *dims, grid, gem, &mut values);
                    }
                    offset += len;
                }
            }
        }
        eprintln!("variant {kind}: {:.1} s", started.elapsed().as_secs_f64());
    }
    let header = serde_json::json!({
        "images": n,
        "labels": images.labels,
        "identities": training.identities.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
        "stored": stored,
        "kinds": kinds,
        "width": w,
        "height": h,
        "gem": gem,
    })
    .to_string();
    let mut file = std::fs::File::create(out).map_err(|e| Error::file(out, e))?;
    file.write_all(&(header.len() as u64).to_le_bytes())
        .unwrap();
    file.write_all(header.as_bytes()).unwrap();
    file.write_all(bytemuck::cast_slice(&values)).unwrap();
    Ok(())
}

/// Writes a strip of images (the image, mild, pert, ext1, ext2) for a few images to a PNG.
fn dump(args: &BTreeMap<String, String>) -> Result<()> {
    let folder = ImageFolder::open(&args["data"])?;
    let (training, _) = folder.split_holdout(10)?;
    let spec = spec(184, 224);
    let images = training.load(preprocess_of(&spec))?;
    let (w, h) = (spec.trunk.width, spec.trunk.height);
    let full = Augment::parse("shift,zoom,brightness,gamma,blur,light,noise", 3)?;
    let picks = [0usize, 13, 57, 101, 222];
    let cols = 5;
    let mut canvas = vec![0f32; 3 * picks.len() * h * cols * w];
    let (cw, ch) = (cols * w, picks.len() * h);
    for (r, &i) in picks.iter().enumerate() {
        let image = images.image(i);
        let views = [
            image.to_vec(),
            perturb(image, w, h, i, true),
            perturb(image, w, h, i, false),
            full.variant(image, w, h, 1, i, 1),
            camera(image, w, h, i),
        ];
        for (c, view) in views.iter().enumerate() {
            for k in 0..3 {
                for y in 0..h {
                    for x in 0..w {
                        canvas[k * cw * ch + (r * h + y) * cw + c * w + x] =
                            view[k * w * h + y * w + x];
                    }
                }
            }
        }
    }
    let image = wgnn::imaging::RgbImage::new(cw, ch, canvas)?;
    wgnn::imaging::io::save(&image, &args["out"])
}

struct Cache {
    width: usize,
    height: usize,
    n: usize,
    labels: Vec<u32>,
    stored: usize,
    kinds: Vec<String>,
    values: Vec<f32>,
}

impl Cache {
    /// Several files of the same images, their variants in file order.
    fn load_all(paths: &str, keep: &[(usize, usize)]) -> Cache {
        let mut all: Option<Cache> = None;
        for path in paths.split(',') {
            let c = Cache::load(path, keep);
            match &mut all {
                None => all = Some(c),
                Some(a) => {
                    assert_eq!(a.labels, c.labels);
                    assert_eq!((a.width, a.height), (c.width, c.height));
                    a.kinds.extend(c.kinds);
                    a.values.extend(c.values);
                }
            }
        }
        all.unwrap()
    }

    fn variant(&self, kind: &str) -> usize {
        self.kinds
            .iter()
            .position(|k| k == kind)
            .unwrap_or_else(|| panic!("no variant {kind} in {:?}", self.kinds))
    }

    /// Loads a features file, keeping only the `(offset, len)` blocks of each pass, in order
    /// (the files of many views are larger than memory otherwise).
    fn load(path: &str, keep: &[(usize, usize)]) -> Cache {
        let mut file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
        let mut len = [0u8; 8];
        file.read_exact(&mut len).unwrap();
        let mut header = vec![0u8; u64::from_le_bytes(len) as usize];
        file.read_exact(&mut header).unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
        let stored = header["stored"].as_u64().unwrap() as usize;
        let mut record = vec![0f32; stored];
        let mut values = Vec::new();
        while file
            .read_exact(bytemuck::cast_slice_mut(&mut record))
            .is_ok()
        {
            for &(offset, len) in keep {
                values.extend_from_slice(&record[offset..offset + len]);
            }
        }
        let size = |key: &str, default: u64| header[key].as_u64().unwrap_or(default) as usize;
        Cache {
            width: size("width", 184),
            height: size("height", 224),
            n: header["images"].as_u64().unwrap() as usize,
            labels: header["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect(),
            stored: keep.iter().map(|b| b.1).sum(),
            kinds: match header["kinds"].as_array() {
                Some(kinds) => kinds
                    .iter()
                    .map(|k| k.as_str().unwrap().to_string())
                    .collect(),
                None => ["orig", "aug1", "aug2", "pert"].map(String::from).to_vec(),
            },
            values,
        }
    }

    fn pass(&self, variant: usize, image: usize, pass: usize) -> &[f32] {
        &self.values[((variant * self.n + image) * 2 + pass) * self.stored..][..self.stored]
    }
}

struct Design {
    blocks: Vec<(usize, usize)>,
    /// Grid cells of each block.
    cells: Vec<usize>,
    sqrt: bool,
    /// Each cell's channel vector L2-normalised on its own (then the block as a whole).
    cellnorm: bool,
    mirror: bool,
}

impl Design {
    fn descriptor(&self, cache: &Cache, variant: usize, image: usize) -> Vec<f32> {
        let d: usize = self.blocks.iter().map(|b| b.1).sum();
        let mut sum = vec![0f32; d];
        for pass in 0..1 + self.mirror as usize {
            let values = cache.pass(variant, image, pass);
            let mut at = 0;
            for (&(offset, len), &cells) in self.blocks.iter().zip(&self.cells) {
                let mut part: Vec<f32> = values[offset..offset + len].to_vec();
                if self.sqrt {
                    part.iter_mut()
                        .for_each(|x| *x = x.signum() * x.abs().sqrt());
                }
                if self.cellnorm && cells > 1 {
                    // Channel-major: cell k's values are k, k + cells, k + 2 cells, ...
                    for k in 0..cells {
                        let norm = part[k..].iter().step_by(cells).map(|x| x * x).sum::<f32>();
                        let norm = norm.sqrt().max(1e-12);
                        part[k..].iter_mut().step_by(cells).for_each(|x| *x /= norm);
                    }
                }
                let norm = part.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                for (s, x) in sum[at..at + len].iter_mut().zip(&part) {
                    *s += x / norm;
                }
                at += len;
            }
        }
        sum
    }
}

fn project(map: &wgnn::faces::whitening::LinearMap, x: &[f32]) -> Vec<f32> {
    let mut y: Vec<f32> = (0..map.rows)
        .map(|r| {
            map.weight[r * map.cols..][..map.cols]
                .iter()
                .zip(x)
                .map(|(w, v)| (*w as f64) * (*v as f64))
                .sum::<f64>() as f32
                + map.bias[r]
        })
        .collect();
    let norm = y.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    y.iter_mut().for_each(|v| *v /= norm);
    y
}

fn eval(args: &BTreeMap<String, String>) -> Result<()> {
    let get = |k: &str, d: &str| args.get(k).cloned().unwrap_or_else(|| d.to_string());
    let width: usize = get("width", "184").parse().unwrap();
    let height: usize = get("height", "224").parse().unwrap();
    let (layout, _) = layout(&spec(width, height))?;
    let mut keep = Vec::new();
    let mut cells = Vec::new();
    for text in get("levels", "fire5:4x3,fire7:1x1").split(',') {
        let level = Level::parse(text)?;
        for grid in level.grids {
            keep.push(layout[&(level.layer.clone(), grid)]);
            cells.push(grid[0] * grid[1]);
        }
    }
    let cache = Cache::load_all(&args["features"], &keep);
    assert_eq!(
        (cache.width, cache.height),
        (width, height),
        "give width= and height="
    );
    // The kept blocks lie one after another in the cache.
    let mut blocks = Vec::new();
    let mut offset = 0;
    for &(_, len) in &keep {
        blocks.push((offset, len));
        offset += len;
    }
    let design = Design {
        blocks,
        cells,
        sqrt: get("sqrt", "0") == "1",
        cellnorm: get("cellnorm", "0") == "1",
        mirror: get("mirror", "1") == "1",
    };
    let variants: Vec<usize> = get("variants", "orig,aug1")
        .split(',')
        .map(|v| cache.variant(v))
        .collect();
    let probes: Vec<usize> = get("probes", "orig,pert")
        .split(',')
        .map(|v| cache.variant(v))
        .collect();
    let dim: usize = get("dim", "128").parse().unwrap();
    let shrink: f64 = get("shrink", "0.25").parse().unwrap();
    let splits: usize = get("splits", "20").parse().unwrap();
    let n_train: usize = get("train", "20").parse().unwrap();
    let d: usize = design.blocks.iter().map(|b| b.1).sum();
    let identities = *cache.labels.iter().max().unwrap() as usize + 1;
    // With `tta=VIEW,...`, each kind's descriptor is summed with those of its `KIND@VIEW`s.
    let views: Vec<String> = get("tta", "")
        .split(',')
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    let descriptors: Vec<Vec<Vec<f32>>> = (0..cache.kinds.len())
        .map(|v| {
            if !variants.contains(&v) && !probes.contains(&v) {
                return Vec::new();
            }
            let with_views: Vec<usize> = if cache.kinds[v].contains('@') {
                vec![v]
            } else {
                std::iter::once(v)
                    .chain(
                        views
                            .iter()
                            .map(|view| cache.variant(&format!("{}@{view}", cache.kinds[v]))),
                    )
                    .collect()
            };
            (0..cache.n)
                .map(|i| {
                    let mut sum = design.descriptor(&cache, with_views[0], i);
                    for &u in &with_views[1..] {
                        for (s, x) in sum.iter_mut().zip(design.descriptor(&cache, u, i)) {
                            *s += x;
                        }
                    }
                    sum
                })
                .collect()
        })
        .collect();
    // With `align=K`, each image's descriptor is that of the zoom 1.077^k (k in -K..=K, views
    // `z0.8` .. `z1.25`) nearest (cosine) to the split's mean training descriptor, summed with
    // its `spread` neighbours on that grid.
    let align: i32 = get("align", "-1").parse().unwrap();
    let spread: i32 = get("spread", "1").parse().unwrap();
    let soft = get("soft", "0") == "1";
    const GRID: [&str; 7] = ["z0.8", "z0.862", "z0.926", "", "z1.08", "z1.16", "z1.25"];
    let grid_descriptors: Vec<Vec<Vec<Vec<f32>>>> = if align < 0 {
        Vec::new()
    } else {
        (0..cache.kinds.len())
            .map(|v| {
                if !variants.contains(&v) && !probes.contains(&v) {
                    return Vec::new();
                }
                GRID.iter()
                    .map(|view| {
                        let u = if view.is_empty() {
                            v
                        } else {
                            cache.variant(&format!("{}@{view}", cache.kinds[v]))
                        };
                        (0..cache.n)
                            .map(|i| design.descriptor(&cache, u, i))
                            .collect()
                    })
                    .collect()
            })
            .collect()
    };
    let orig = cache.variant("orig");
    let mut picked = vec![0usize; GRID.len()];
    // With `per_person=1`: per identity, wrong one-shot decisions (as probe) and rounds seen.
    let per_person = get("per_person", "0") == "1";
    let mut person_errors = vec![[0usize; 2]; identities];
    let mut results = Vec::new();
    for split in 0..splits {
        let mut order: Vec<u32> = (0..identities as u32).collect();
        Rng::new(1000 + split as u64).shuffle(&mut order);
        let train_ids = &order[..n_train];
        let is_train = |label: u32| train_ids.contains(&label);
        // The aligned descriptors depend on the split's template, so they are made per split.
        let mut aligned = Vec::new();
        if align >= 0 {
            aligned = descriptors.clone();
            let mut template = vec![0f64; d];
            for i in (0..cache.n).filter(|&i| is_train(cache.labels[i])) {
                for (t, x) in template.iter_mut().zip(&grid_descriptors[orig][3][i]) {
                    *t += *x as f64;
                }
            }
            let cosine = |x: &[f32]| {
                let dot: f64 = x.iter().zip(&template).map(|(a, b)| *a as f64 * b).sum();
                dot / x.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt()
            };
            // `estimator=reg`: ridge regression of the log zoom on the descriptors of the
            // training identities' views; the view whose predicted log zoom is nearest 0 wins.
            let regression = (get("estimator", "cos") == "reg").then(|| {
                let mut xs = Vec::new();
                let mut ys = Vec::new();
                for i in (0..cache.n).filter(|&i| is_train(cache.labels[i])) {
                    for (k, per_image) in grid_descriptors[orig].iter().enumerate() {
                        xs.extend_from_slice(&per_image[i]);
                        ys.push((k as f64 - 3.0) * 1.077f64.ln());
                    }
                }
                let ridge = get("ridge", "0.1").parse().unwrap();
                ZoomRegressor::fit(&xs, d, &ys, ridge).unwrap()
            });
            let score = |x: &[f32]| match &regression {
                Some(regressor) => -regressor.log_zoom(x).abs(),
                None => cosine(x),
            };
            for (v, per_view) in grid_descriptors.iter().enumerate() {
                if per_view.is_empty() {
                    continue;
                }
                for i in 0..cache.n {
                    if let (true, Some(regressor)) = (soft, &regression) {
                        // The zoom predicted from the image itself, as a fractional view
                        // index; views summed at t - 1, t, t + 1, each interpolated linearly
                        // between its two neighbours on the grid.
                        let x = &per_view[3][i];
                        let log_zoom = regressor.log_zoom(x);
                        let t = (3.0 - log_zoom / 1.077f64.ln())
                            .clamp((3 - align + spread) as f64, (3 + align - spread) as f64);
                        picked[t.round() as usize] += 1;
                        let mut sum = vec![0f32; d];
                        for j in -spread..=spread {
                            let at = t + j as f64;
                            let (lo, frac) = (at.floor(), at - at.floor());
                            for (k, weight) in [(lo as usize, 1.0 - frac), (lo as usize + 1, frac)]
                            {
                                if weight > 0.0 {
                                    for (s, x) in sum.iter_mut().zip(&per_view[k][i]) {
                                        *s += weight as f32 * x;
                                    }
                                }
                            }
                        }
                        aligned[v][i] = sum;
                        continue;
                    }
                    let best = (3 - align..=3 + align)
                        .max_by(|&a, &b| {
                            score(&per_view[a as usize][i])
                                .total_cmp(&score(&per_view[b as usize][i]))
                        })
                        .unwrap();
                    picked[best as usize] += 1;
                    let mut sum = vec![0f32; d];
                    for k in (best - spread).max(0)..=(best + spread).min(6) {
                        for (s, x) in sum.iter_mut().zip(&per_view[k as usize][i]) {
                            *s += x;
                        }
                    }
                    aligned[v][i] = sum;
                }
            }
        }
        let descriptors = if align >= 0 { &aligned } else { &descriptors };
        let mut x = Vec::new();
        let mut y = Vec::new();
        for &v in &variants {
            for i in 0..cache.n {
                if is_train(cache.labels[i]) {
                    x.extend_from_slice(&descriptors[v][i]);
                    y.push(cache.labels[i]);
                }
            }
        }
        let map = learned_whitening(&x, d, &y, dim, shrink)?;
        let mut scores = Vec::new();
        for &v in &probes {
            let mut e = Vec::new();
            let mut l = Vec::new();
            for i in 0..cache.n {
                if !is_train(cache.labels[i]) {
                    e.extend(project(&map, &descriptors[v][i]));
                    l.push(cache.labels[i]);
                }
            }
            let m = metrics::evaluate(&e, map.rows, &l)?;
            if per_person && v == probes[0] {
                count_person_errors(&e, map.rows, &l, &mut person_errors);
            }
            scores.push(m.one_shot_accuracy);
            scores.push(m.eer);
        }
        results.push(scores);
    }
    let column = |k: usize| results.iter().map(|r| r[k]).collect::<Vec<f64>>();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let q10 = |v: &[f64], low: bool| {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        if low {
            s[s.len() / 10]
        } else {
            s[s.len() - 1 - s.len() / 10]
        }
    };
    let rest: Vec<String> = args
        .iter()
        .filter(|(k, _)| *k != "features")
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut line = format!("{:<50}", rest.join(" "));
    for (p, kind) in probes.iter().enumerate() {
        let (o, e) = (column(2 * p), column(2 * p + 1));
        line += &format!(
            " | {} {:.4} ({:.4} p10 {:.4}) eer {:.4} ({:.4} p90 {:.4})",
            cache.kinds[*kind],
            mean(&o),
            min(&o),
            q10(&o, true),
            mean(&e),
            max(&e),
            q10(&e, false)
        );
    }
    if align >= 0 {
        line += &format!(" | picked {picked:?}");
    }
    println!("{line}");
    if per_person {
        let mut worst: Vec<(usize, [usize; 2])> = person_errors
            .iter()
            .copied()
            .enumerate()
            .filter(|p| p.1[1] > 0)
            .collect();
        let rate = |p: &(usize, [usize; 2])| p.1[0] as f64 / p.1[1] as f64;
        worst.sort_by(|a, b| rate(b).total_cmp(&rate(a)));
        let text: Vec<String> = worst
            .iter()
            .take(12)
            .map(|(id, [wrong, seen])| format!("#{} {:.3}", id + 1, *wrong as f64 / *seen as f64))
            .collect();
        println!(
            "  error rate as probe (first probe kind): {}",
            text.join(", ")
        );
    }
    Ok(())
}

/// Adds each identity's wrong one-shot decisions (as the probe) and decisions made to `counts`,
/// with the protocol of `metrics::evaluate` (gallery: the r-th image of every identity).
fn count_person_errors(embeddings: &[f32], dim: usize, labels: &[u32], counts: &mut [[usize; 2]]) {
    let n = labels.len();
    let row = |i: usize| &embeddings[i * dim..(i + 1) * dim];
    let mut members: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        members.entry(l).or_default().push(i);
    }
    let rounds = members.values().map(Vec::len).min().unwrap();
    for r in 0..rounds {
        let gallery: Vec<(u32, usize)> = members.iter().map(|(l, m)| (*l, m[r])).collect();
        for i in 0..n {
            if gallery.iter().any(|g| g.1 == i) {
                continue;
            }
            let distance = |j: usize| -> f32 {
                row(i)
                    .iter()
                    .zip(row(j))
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum()
            };
            let nearest = gallery
                .iter()
                .min_by(|a, b| distance(a.1).total_cmp(&distance(b.1)))
                .unwrap();
            let counter = &mut counts[labels[i] as usize];
            counter[1] += 1;
            if nearest.0 != labels[i] {
                counter[0] += 1;
            }
        }
    }
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut args = BTreeMap::new();
    let mut i = 1;
    while i < argv.len() {
        let a = &argv[i];
        if let Some(key) = a.strip_prefix("--") {
            args.insert(key.to_string(), argv[i + 1].clone());
            i += 2;
        } else {
            let (k, v) = a.split_once('=').expect("key=value");
            args.insert(k.to_string(), v.to_string());
            i += 1;
        }
    }
    match argv.first().map(String::as_str) {
        Some("features") => features(&args),
        Some("eval") => eval(&args),
        Some("dump") => dump(&args),
        _ => Err(Error::Invalid(
            "usage: faces_validate features|eval ... (see the source)".into(),
        )),
    }
}
