//! Choosing the device and precision the model runs on.
//!
//! `auto` tries CUDA device 0 and falls back to CPU when no device initialises (including builds
//! without the `cuda` feature), logging what it chose. An explicit `cuda:N` that fails is an error.
//! [`DeviceRequest`] and [`DTypeRequest`] are what `--device` and `--dtype` parse into.

use anyhow::{bail, Context};
use candle_core::{DType, Device};

/// Where the service runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRequest {
    /// CUDA device 0 when one initialises, otherwise CPU.
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceRequest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("expected auto, cpu, cuda or cuda:N, got {other:?}")),
        }
    }
}

/// Numeric precision of the weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DTypeRequest {
    /// f16 on CUDA; on CPU bf16 matrix products (projections and attention) where the CPU has
    /// AMX-BF16, else f32.
    Auto,
    F32,
    F16,
    Bf16,
}

/// The device for a model of `model_type`; `cuda_ok` says whether its family has a CUDA
/// implementation. Without one, an explicit `cuda` is an error and `auto` uses the CPU.
pub fn select_device_for(
    request: DeviceRequest,
    model_type: &str,
    cuda_ok: bool,
) -> anyhow::Result<Device> {
    if cuda_ok {
        return select_device(request);
    }
    match request {
        DeviceRequest::Cpu => Ok(Device::Cpu),
        DeviceRequest::Cuda(_) => bail!(
            "{model_type} models have no CUDA implementation in inferd (its CUDA path runs \
             candle-transformers' encoders: BERT, RoBERTa/XLM-R/CamemBERT, DistilBERT); serve it \
             with --device cpu (or auto)"
        ),
        DeviceRequest::Auto => {
            tracing::info!(
                model_type,
                "device auto: {model_type} has no CUDA implementation, using CPU"
            );
            Ok(Device::Cpu)
        }
    }
}

pub fn select_device(request: DeviceRequest) -> anyhow::Result<Device> {
    match request {
        DeviceRequest::Cpu => Ok(Device::Cpu),
        DeviceRequest::Cuda(ordinal) => Device::new_cuda(ordinal).with_context(|| {
            format!("initialising CUDA device {ordinal} (--device cuda:{ordinal})")
        }),
        DeviceRequest::Auto => match Device::new_cuda(0) {
            Ok(device) => {
                tracing::info!("device auto: using CUDA device 0");
                Ok(device)
            }
            Err(err) => {
                tracing::info!(reason = %err, "device auto: no CUDA device, using CPU");
                Ok(Device::Cpu)
            }
        },
    }
}

/// `dtype` for a model of `family`: on CUDA, families whose candle model runs in f32 only get
/// f32 under `--dtype auto` (logged) and refuse an explicit f16/bf16.
pub fn family_dtype(
    dtype: DType,
    request: DTypeRequest,
    device: &Device,
    model_type: &str,
    family: super::arch::Family,
) -> anyhow::Result<DType> {
    if device.is_cpu() || dtype == DType::F32 || family.cuda_half_precision() {
        return Ok(dtype);
    }
    if request != DTypeRequest::Auto {
        bail!("{model_type} runs in f32 only on CUDA (candle-transformers' model); use --dtype f32 or auto");
    }
    tracing::info!(model_type, "dtype auto: {model_type} runs in f32 on CUDA");
    Ok(DType::F32)
}

pub fn select_dtype(request: DTypeRequest, device: &Device) -> anyhow::Result<DType> {
    match (request, device.is_cpu()) {
        // AMX multiplies bf16 several times faster than AVX-512 does f32, within the parity bar.
        (DTypeRequest::Auto, true) if super::isa().amx_bf16 => Ok(DType::BF16),
        (DTypeRequest::Auto, true) | (DTypeRequest::F32, _) => Ok(DType::F32),
        (DTypeRequest::Auto, false) | (DTypeRequest::F16, false) => Ok(DType::F16),
        (DTypeRequest::Bf16, false) => Ok(DType::BF16),
        // On the CPU bf16 means bf16 projections (AVX-512 BF16), everything else f32.
        (DTypeRequest::Bf16, true) if super::isa().avx512_bf16 => Ok(DType::BF16),
        (DTypeRequest::Bf16, true) => {
            bail!("--dtype bf16 on CPU needs AVX-512 BF16, which this CPU lacks; use f32")
        }
        (DTypeRequest::F16, true) => {
            bail!("--dtype f16 needs a CUDA device; on CPU use f32 or bf16 (or --dtype auto)")
        }
    }
}

/// Short name for logs, /info and metric labels.
pub fn device_name(device: &Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => match device.location() {
            candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
            _ => "cuda".into(),
        },
        Device::Metal(_) => "metal".into(),
    }
}

pub fn dtype_name(dtype: DType) -> &'static str {
    dtype.as_str()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!("auto".parse(), Ok(DeviceRequest::Auto));
        assert_eq!("cpu".parse(), Ok(DeviceRequest::Cpu));
        assert_eq!("cuda".parse(), Ok(DeviceRequest::Cuda(0)));
        assert_eq!("cuda:3".parse(), Ok(DeviceRequest::Cuda(3)));
        assert!("tpu".parse::<DeviceRequest>().is_err());
    }

    #[test]
    fn auto_falls_back_to_cpu_without_a_gpu() {
        // On machines without CUDA (every CI machine) auto must come back with the CPU.
        let device = select_device(DeviceRequest::Auto).unwrap();
        if !candle_core::utils::cuda_is_available() {
            assert!(device.is_cpu());
        }
    }

    #[test]
    fn families_without_cuda_refuse_it_and_auto_uses_the_cpu() {
        let err = select_device_for(DeviceRequest::Cuda(0), "mpnet", false).unwrap_err();
        assert!(err.to_string().contains("--device cpu"), "{err}");
        assert!(select_device_for(DeviceRequest::Auto, "mpnet", false)
            .unwrap()
            .is_cpu());
    }

    #[test]
    fn cpu_precision_follows_the_cpu() {
        let auto = if crate::model::isa().amx_bf16 {
            DType::BF16
        } else {
            DType::F32
        };
        assert_eq!(
            select_dtype(DTypeRequest::Auto, &Device::Cpu).unwrap(),
            auto
        );
        assert!(select_dtype(DTypeRequest::F16, &Device::Cpu).is_err());
        assert_eq!(
            select_dtype(DTypeRequest::Bf16, &Device::Cpu).is_ok(),
            crate::model::isa().avx512_bf16
        );
    }
}
