//! A gallery of enrolled people: a name and one L2-normalised embedding each, tied to the model
//! that computed the embeddings.
//!
//! File format (JSON, one line, written atomically):
//! `{"format": "wgnn-gallery", "version": 1, "model_fingerprint": F, "dim": D,
//!   "people": [{"name": N, "images": K, "embedding": [D numbers]}, ...]}`, people sorted by
//! name. Embedding values are stored as the f64 of the f32, so they read back bit for bit.
//! Embeddings from different models live in different spaces, so a gallery whose fingerprint is
//! not the current model's is refused.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use super::check_embeddings;
use super::metrics::squared_l2;
use wgnn::files::write_atomically;
use wgnn::{Error, Result};

const FORMAT: &str = "wgnn-gallery";
const VERSION: u64 = 1;

/// Printed by `identify` for a face that matches nobody; not allowed as a name.
pub const UNKNOWN: &str = "unknown";

/// Enrolled people, by name.
#[derive(Clone, Debug, PartialEq)]
pub struct Gallery {
    model_fingerprint: String,
    dim: usize,
    people: BTreeMap<String, Person>,
}

/// One enrolled person.
#[derive(Clone, Debug, PartialEq)]
pub struct Person {
    /// The re-normalised mean of the enrolled images' embeddings.
    pub embedding: Vec<f32>,
    /// How many images were enrolled.
    pub images: usize,
}

/// The answer of [`Gallery::verify`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verification {
    /// `distance <= threshold`.
    pub matched: bool,
    /// Squared L2 distance to the person's embedding.
    pub distance: f32,
}

/// The answer of [`Gallery::identify`].
#[derive(Clone, Debug, PartialEq)]
pub struct Identification {
    /// The nearest person when within the threshold, `None` (unknown) otherwise.
    pub name: Option<String>,
    /// The nearest person, whatever the distance.
    pub nearest: String,
    /// Squared L2 distance to the nearest person.
    pub distance: f32,
}

impl Gallery {
    /// An empty gallery for embeddings of `dim` values from the model with `model_fingerprint`.
    pub fn new(model_fingerprint: impl Into<String>, dim: usize) -> Self {
        Self {
            model_fingerprint: model_fingerprint.into(),
            dim,
            people: BTreeMap::new(),
        }
    }

    /// Reads a gallery file and checks that it was built with the model `model_fingerprint`.
    pub fn load(path: &Path, model_fingerprint: &str) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e))?;
        let gallery = Self::from_json(&text).map_err(|message| Error::file(path, message))?;
        if gallery.model_fingerprint != model_fingerprint {
            return Err(Error::file(
                path,
                format!(
                    "this gallery was built with another model (fingerprint {}, this model's is \
                     {model_fingerprint}): its embeddings cannot be compared; enroll the people \
                     again with this model, into a new gallery",
                    gallery.model_fingerprint
                ),
            ));
        }
        Ok(gallery)
    }

    /// [`Gallery::load`] when `path` exists, else an empty gallery.
    pub fn open_or_new(path: &Path, model_fingerprint: &str, dim: usize) -> Result<Self> {
        if path.exists() {
            let gallery = Self::load(path, model_fingerprint)?;
            if gallery.dim != dim {
                return Err(Error::file(
                    path,
                    format!(
                        "gallery embeddings have {} values, the model's have {dim}",
                        gallery.dim
                    ),
                ));
            }
            Ok(gallery)
        } else {
            Ok(Self::new(model_fingerprint, dim))
        }
    }

    /// Writes the gallery to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = self.to_json().to_string();
        text.push('\n');
        write_atomically(path, text.as_bytes())
    }

    pub fn model_fingerprint(&self) -> &str {
        &self.model_fingerprint
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Enrolled names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.people.keys().map(String::as_str).collect()
    }

    pub fn person(&self, name: &str) -> Option<&Person> {
        self.people.get(name)
    }

    pub fn len(&self) -> usize {
        self.people.len()
    }

    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    /// Enrolls `name` from the embeddings of their images (`[n, dim]`, `n >= 1`): the mean,
    /// re-normalised. Replaces an earlier enrolment of the same name; returns whether it did.
    pub fn enroll(&mut self, name: &str, embeddings: &[f32]) -> Result<bool> {
        validate_name(name)?;
        if embeddings.is_empty() {
            return Err(Error::Invalid(format!("enroll {name}: no images given")));
        }
        let n = embeddings.len() / self.dim.max(1);
        check_embeddings("Gallery::enroll", embeddings, self.dim, n)?;
        let mut mean = vec![0.0f64; self.dim];
        for row in embeddings.chunks_exact(self.dim) {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += x as f64 / n as f64;
            }
        }
        let norm = mean.iter().map(|m| m * m).sum::<f64>().sqrt();
        // Unit embeddings that (nearly) cancel leave no direction to enroll.
        if norm < 1e-6 {
            return Err(Error::Invalid(format!(
                "enroll {name}: the images' embeddings cancel out (their mean is zero)"
            )));
        }
        let person = Person {
            embedding: mean.iter().map(|m| (m / norm) as f32).collect(),
            images: n,
        };
        Ok(self.people.insert(name.to_string(), person).is_some())
    }

    /// Whether `embedding` is `name`'s face: its distance to `name`'s embedding is `<= threshold`.
    pub fn verify(&self, name: &str, embedding: &[f32], threshold: f32) -> Result<Verification> {
        check_embeddings("Gallery::verify", embedding, self.dim, 1)?;
        let person = self.people.get(name).ok_or_else(|| {
            Error::Invalid(format!(
                "`{name}` is not enrolled in this gallery; enrolled: {}",
                self.enrolled_list()
            ))
        })?;
        let distance = squared_l2(embedding, &person.embedding) as f32;
        Ok(Verification {
            matched: distance <= threshold,
            distance,
        })
    }

    /// The `k` enrolled people nearest to `embedding`, nearest first, with their squared L2
    /// distances (equal distances in sorted order of the names); all of them when fewer.
    pub fn nearest(&self, embedding: &[f32], k: usize) -> Result<Vec<(String, f32)>> {
        check_embeddings("Gallery::nearest", embedding, self.dim, 1)?;
        let mut all: Vec<(String, f32)> = self
            .people
            .iter()
            .map(|(name, person)| {
                (
                    name.clone(),
                    squared_l2(embedding, &person.embedding) as f32,
                )
            })
            .collect();
        // `people` is sorted by name, and a stable sort keeps that order among equal distances.
        all.sort_by(|a, b| a.1.total_cmp(&b.1));
        all.truncate(k);
        Ok(all)
    }

    /// The nearest enrolled person to `embedding`, or unknown when farther than `threshold`.
    /// Equal distances go to the first name in sorted order.
    pub fn identify(&self, embedding: &[f32], threshold: f32) -> Result<Identification> {
        check_embeddings("Gallery::identify", embedding, self.dim, 1)?;
        let mut nearest: Option<(&str, f32)> = None;
        for (name, person) in &self.people {
            let d = squared_l2(embedding, &person.embedding) as f32;
            if nearest.is_none_or(|(_, best)| d < best) {
                nearest = Some((name, d));
            }
        }
        let (nearest, distance) = nearest.ok_or_else(|| {
            Error::Invalid("the gallery is empty: enroll someone first".to_string())
        })?;
        Ok(Identification {
            name: (distance <= threshold).then(|| nearest.to_string()),
            nearest: nearest.to_string(),
            distance,
        })
    }

    fn enrolled_list(&self) -> String {
        if self.people.is_empty() {
            "nobody yet".to_string()
        } else {
            self.names().join(", ")
        }
    }

    fn to_json(&self) -> Value {
        let people: Vec<Value> = self
            .people
            .iter()
            .map(|(name, person)| {
                let embedding: Vec<f64> = person.embedding.iter().map(|&x| x as f64).collect();
                json!({"name": name, "images": person.images, "embedding": embedding})
            })
            .collect();
        json!({
            "format": FORMAT,
            "version": VERSION,
            "model_fingerprint": self.model_fingerprint,
            "dim": self.dim,
            "people": people,
        })
    }

    fn from_json(text: &str) -> std::result::Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not a wgnn gallery: {e}"))?;
        if value["format"] != FORMAT {
            return Err("not a wgnn gallery (no \"format\": \"wgnn-gallery\")".to_string());
        }
        if value["version"] != VERSION {
            return Err(format!(
                "gallery version {} is not supported (this wgnn reads version {VERSION})",
                value["version"]
            ));
        }
        let corrupt = |what: &str| format!("corrupt gallery: {what}");
        let model_fingerprint = value["model_fingerprint"]
            .as_str()
            .ok_or_else(|| corrupt("no model_fingerprint"))?
            .to_string();
        let dim = value["dim"]
            .as_u64()
            .filter(|&d| d > 0)
            .ok_or_else(|| corrupt("no dim"))? as usize;
        let mut people = BTreeMap::new();
        for entry in value["people"]
            .as_array()
            .ok_or_else(|| corrupt("no people"))?
        {
            let name = entry["name"]
                .as_str()
                .ok_or_else(|| corrupt("a person without a name"))?;
            let embedding: Vec<f32> = entry["embedding"]
                .as_array()
                .ok_or_else(|| corrupt(&format!("{name} has no embedding")))?
                .iter()
                .map(|x| x.as_f64().map(|x| x as f32))
                .collect::<Option<_>>()
                .filter(|e: &Vec<f32>| e.len() == dim && e.iter().all(|x| x.is_finite()))
                .ok_or_else(|| corrupt(&format!("{name}'s embedding is not {dim} numbers")))?;
            let images = entry["images"].as_u64().unwrap_or(1) as usize;
            people.insert(name.to_string(), Person { embedding, images });
        }
        Ok(Self {
            model_fingerprint,
            dim,
            people,
        })
    }
}

fn validate_name(name: &str) -> Result<()> {
    if name.trim().is_empty() || name.trim() != name {
        return Err(Error::Invalid(format!(
            "`{name}` is not a usable name: it must be non-empty, without surrounding spaces"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::Invalid(
            "a name cannot contain control characters".to_string(),
        ));
    }
    if name == UNKNOWN {
        return Err(Error::Invalid(format!(
            "`{UNKNOWN}` is reserved: identify prints it for faces that match nobody"
        )));
    }
    Ok(())
}
