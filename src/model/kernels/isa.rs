//! Which instruction set this process runs its kernels on. Every CPU-feature question asked by
//! the kernels, by the CPU precision choice and by the index's dot products is answered here,
//! from one detection made once per process; [`Isa::name`] is what the startup log and `/info`
//! report (`cpu_isa`).
//!
//! AMX needs more than the CPU's word: the OS must save tile state (XCR0) and Linux hands a
//! process that state only on request (`arch_prctl(ARCH_REQ_XCOMP_PERM)`), asked for here, once.
//! So "AMX-BF16" means: the CPU has it, and this process may use it.

use std::sync::OnceLock;

/// The instruction-set extensions the kernels branch on; each implies the ones above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Isa {
    /// AVX2 with FMA: the 256-bit `f32` kernels.
    pub avx2_fma: bool,
    /// AVX-512F (and AVX2 + FMA): the 512-bit `f32` kernels.
    pub avx512f: bool,
    /// AVX-512 BF16 (and AVX-512F): bf16 projections (`--dtype bf16` on CPU).
    pub avx512_bf16: bool,
    /// AMX-TILE + AMX-BF16 (and AVX-512 BF16), tile state granted: bf16 products on tiles,
    /// which `--dtype auto` picks.
    pub amx_bf16: bool,
}

/// This process's instruction set, detected on first use.
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let isa = Isa::detect();
        tracing::debug!(?isa, name = isa.name(), "instruction set");
        isa
    })
}

impl Isa {
    #[cfg(target_arch = "x86_64")]
    fn detect() -> Self {
        use std::arch::is_x86_feature_detected as has;
        let avx2_fma = has!("avx2") && has!("fma");
        let avx512f = avx2_fma && has!("avx512f");
        let avx512_bf16 = avx512f && has!("avx512bf16");
        let amx_bf16 = avx512_bf16 && amx::cpu_has_amx_bf16() && amx::request_tile_state();
        Isa {
            avx2_fma,
            avx512f,
            avx512_bf16,
            amx_bf16,
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn detect() -> Self {
        Isa::default()
    }

    /// The widest extension in use: `amx-bf16`, `avx512-bf16`, `avx512f`, `avx2-fma` or
    /// `baseline` (portable code the compiler vectorised for the build target).
    pub fn name(self) -> &'static str {
        if self.amx_bf16 {
            "amx-bf16"
        } else if self.avx512_bf16 {
            "avx512-bf16"
        } else if self.avx512f {
            "avx512f"
        } else if self.avx2_fma {
            "avx2-fma"
        } else {
            "baseline"
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod amx {
    /// CPUID leaf 7 AMX-BF16 and AMX-TILE, and XCR0 bits 17–18 (the OS saves tile state).
    pub(super) fn cpu_has_amx_bf16() -> bool {
        use std::arch::x86_64::{__cpuid_count, _xgetbv};
        #[allow(unused_unsafe)] // safe to call from Rust 1.94 on
        // SAFETY: `cpuid` exists on every x86-64 CPU; leaf 7 is read only when leaf 0 reports it.
        let (max_leaf, leaf7, leaf1) = unsafe {
            (
                __cpuid_count(0, 0).eax,
                __cpuid_count(7, 0),
                __cpuid_count(1, 0),
            )
        };
        let osxsave = leaf1.ecx & (1 << 27) != 0;
        if max_leaf < 7 || !osxsave {
            return false;
        }
        let (amx_bf16, amx_tile) = (leaf7.edx & (1 << 22) != 0, leaf7.edx & (1 << 24) != 0);
        // SAFETY: `xgetbv` is available when CPUID reports OSXSAVE (checked above).
        let xcr0 = unsafe { _xgetbv(0) };
        amx_bf16 && amx_tile && xcr0 & (0b11 << 17) == 0b11 << 17
    }

    /// Asks Linux for permission to use tile data (`ARCH_REQ_XCOMP_PERM`, `XFEATURE_XTILEDATA`).
    #[cfg(target_os = "linux")]
    pub(super) fn request_tile_state() -> bool {
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: a plain syscall with integer arguments; failure is reported, not undefined.
        unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            ) == 0
        }
    }

    /// Tile kernels are built for Linux only.
    #[cfg(not(target_os = "linux"))]
    pub(super) fn request_tile_state() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_extension_implies_the_ones_below_it() {
        let isa = isa();
        assert!(!isa.amx_bf16 || isa.avx512_bf16);
        assert!(!isa.avx512_bf16 || isa.avx512f);
        assert!(!isa.avx512f || isa.avx2_fma);
    }

    #[test]
    fn the_name_is_the_widest_extension() {
        let mut isa = Isa::default();
        assert_eq!(isa.name(), "baseline");
        isa.avx2_fma = true;
        assert_eq!(isa.name(), "avx2-fma");
        isa.avx512f = true;
        assert_eq!(isa.name(), "avx512f");
        isa.avx512_bf16 = true;
        assert_eq!(isa.name(), "avx512-bf16");
        isa.amx_bf16 = true;
        assert_eq!(isa.name(), "amx-bf16");
    }
}
