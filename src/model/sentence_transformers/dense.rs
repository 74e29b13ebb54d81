//! sentence-transformers' `Dense` module (`2_Dense/`): `act(x · Wᵀ + b)` on pooled vectors,
//! applied after pooling and before `Normalize`, on the CPU in f32 whatever the device.

use std::path::Path;

use anyhow::{bail, Context};
use candle_core::{DType, Device};
use serde::Deserialize;

use crate::model::kernels::erf;

/// The activations sentence-transformers saves by their torch class name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Tanh,
    Relu,
    Sigmoid,
    Gelu,
}

impl Activation {
    /// From `activation_function`, e.g. `torch.nn.modules.activation.Tanh`.
    fn parse(name: &str) -> anyhow::Result<Self> {
        Ok(match name.rsplit('.').next().unwrap_or(name) {
            "Identity" => Self::Identity,
            "Tanh" => Self::Tanh,
            "ReLU" => Self::Relu,
            "Sigmoid" => Self::Sigmoid,
            "GELU" => Self::Gelu,
            _ => bail!(
                "Dense activation_function {name:?} is not supported (Identity, Tanh, ReLU, Sigmoid, GELU)"
            ),
        })
    }

    fn apply(self, x: f32) -> f32 {
        match self {
            Self::Identity => x,
            Self::Tanh => x.tanh(),
            Self::Relu => x.max(0.0),
            Self::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Self::Gelu => 0.5 * x * (1.0 + erf::<false>(x * std::f32::consts::FRAC_1_SQRT_2)),
        }
    }
}

#[derive(Deserialize)]
struct DenseConfig {
    in_features: usize,
    out_features: usize,
    #[serde(default = "yes")]
    bias: bool,
    /// sentence-transformers' default is Tanh.
    #[serde(default)]
    activation_function: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq)]
pub struct Dense {
    /// `[out, in]`, row-major (torch's layout: one output per row).
    weight: Vec<f32>,
    bias: Vec<f32>,
    pub inputs: usize,
    pub outputs: usize,
    pub activation: Activation,
}

impl Dense {
    /// Reads `dir/config.json` and `dir/model.safetensors`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let config: DenseConfig = super::read_required(&dir.join("config.json"))?;
        let activation = Activation::parse(
            config
                .activation_function
                .as_deref()
                .unwrap_or("torch.nn.modules.activation.Tanh"),
        )?;
        let path = dir.join("model.safetensors");
        if !path.exists() {
            bail!(
                "{} is missing: inferd reads Dense weights from safetensors only (re-save the model with sentence-transformers ≥ 3)",
                path.display()
            );
        }
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
            .with_context(|| format!("reading {}", path.display()))?;
        let get = |name: &str, shape: &[usize]| -> anyhow::Result<Vec<f32>> {
            let t = tensors
                .get(name)
                .with_context(|| format!("{} has no {name}", path.display()))?;
            if t.dims() != shape {
                bail!(
                    "{name} in {} is {:?}, expected {shape:?}",
                    path.display(),
                    t.dims()
                );
            }
            Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
        };
        let (i, o) = (config.in_features, config.out_features);
        Ok(Self {
            weight: get("linear.weight", &[o, i])?,
            bias: if config.bias {
                get("linear.bias", &[o])?
            } else {
                vec![0.0; o]
            },
            inputs: i,
            outputs: o,
            activation,
        })
    }

    /// `act(W · x + b)`; `x` must be `inputs` long.
    pub fn forward(&self, x: &[f32]) -> Vec<f32> {
        debug_assert_eq!(x.len(), self.inputs);
        self.weight
            .chunks_exact(self.inputs)
            .zip(&self.bias)
            .map(|(row, b)| {
                let dot: f64 = row.iter().zip(x).map(|(w, x)| *w as f64 * *x as f64).sum();
                self.activation.apply((dot + *b as f64) as f32)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_and_product() {
        let dense = Dense {
            weight: vec![1.0, 2.0, -1.0, 0.5],
            bias: vec![0.5, -0.25],
            inputs: 2,
            outputs: 2,
            activation: Activation::Identity,
        };
        assert_eq!(dense.forward(&[1.0, 1.0]), vec![3.5, -0.75]);
        assert_eq!(
            Activation::parse("torch.nn.modules.activation.Tanh").unwrap(),
            Activation::Tanh
        );
        assert!(Activation::parse("torch.nn.modules.activation.Softplus").is_err());
        assert!((Activation::Gelu.apply(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((Activation::Gelu.apply(-3.0) - -0.004_049_66).abs() < 1e-6);
    }
}
