//! The AMX variant of [`super::bf16::Panels`]' product, for CPUs with AMX-TILE and AMX-BF16
//! (Sapphire Rapids and later Xeons): one `tdpbf16ps` multiplies a 16 × 32 bf16 tile of inputs
//! by a 32 × 16 tile of weights into 16 × 16 `f32` sums, 8,192 multiply-adds per instruction,
//! where an AVX-512 FMA does 16.
//!
//! It reads the bf16 panels as they are: a panel's `[k / 2][NR]` lanes of weight pairs is the
//! pair-interleaved layout `tdpbf16ps` wants for its right operand, so a weight tile is 16 pair
//! rows × 16 columns of a panel, at the panel's row stride. Inputs are the same bf16 pair rows
//! as the AVX-512 BF16 kernel's, padded with zero rows to a multiple of 32. Both start on a
//! cache line, so no 64-byte tile row straddles two. Results are those of that kernel up to
//! summation order; each row's sums depend on that row alone, so a text's vector does not
//! depend on what it was batched with.
//!
//! Linux hands out the 8 KiB of tile state per process on request (`arch_prctl`), asked once by
//! [`super::isa`], which says whether this kernel runs. Each thread loads the tile configuration
//! (all eight tiles 16 rows × 64 bytes) the first time it runs a tile and keeps it.

use std::{arch::asm, cell::Cell};

/// Rows of an input or output tile.
pub(super) const ROWS: usize = 16;
/// Input pairs (32 bf16 inputs) per tile: 64 bytes a row.
pub(super) const PAIRS: usize = 16;
/// Rows and columns of one [`Block`]: 2 × 2 tiles.
pub(super) const BLOCK: usize = 2 * ROWS;

/// The tile configuration: palette 1, all eight tiles 16 rows × 64 bytes.
#[repr(C, align(64))]
struct Config([u8; 64]);

const CONFIG: Config = {
    let mut c = [0u8; 64];
    c[0] = 1;
    let mut t = 0;
    while t < 8 {
        c[16 + 2 * t] = 64;
        c[48 + t] = ROWS as u8;
        t += 1;
    }
    Config(c)
};

thread_local! {
    static CONFIGURED: Cell<bool> = const { Cell::new(false) };
}

/// One output block: 32 input rows times 32 weight columns, every input pair, as 2 × 2 tiles.
pub(super) struct Block<'a> {
    /// 32 rows of `k2` input pairs (zero rows past the real ones).
    pub x: &'a [u32],
    pub k2: usize,
    /// The two 16-column weight tiles, each `k2` rows of 16 pairs at row stride `ldw`.
    pub w: [&'a [u32]; 2],
    pub ldw: usize,
    /// Real rows and columns (each ≤ 32) to write.
    pub rows: usize,
    pub cols: usize,
    /// Where row 0, column 0 of the block goes, at row stride `ldo`; valid for `rows` × `cols`
    /// writes that nobody else makes meanwhile.
    pub out: *mut f32,
    pub ldo: usize,
}

/// Computes `b`.
///
/// Two input tiles meet two weight tiles: four loads feed four products, where one input tile
/// against a panel's three weight tiles took four loads for three. Tiles are not renamed, so a
/// load waits for the products still reading its tile; the order below loads each tile right
/// before its first use.
///
/// # Safety
/// [`super::isa::Isa::amx_bf16`] must hold; `b` must obey [`Block`]'s contract.
pub(super) unsafe fn block(b: &Block) {
    let (k2, ldw) = (b.k2, b.ldw);
    assert!(k2.is_multiple_of(PAIRS) && b.x.len() == BLOCK * k2 && ldw >= PAIRS);
    assert!(b.w.iter().all(|w| w.len() >= (k2 - 1) * ldw + PAIRS));
    assert!(b.rows <= BLOCK && b.cols <= BLOCK);
    // SAFETY: tiles are enabled for this process (`isa().amx_bf16`); every tile load reads 16
    // rows of 64 bytes inside `x` (row stride k2 * 4) or a weight tile (row stride ldw * 4), as
    // asserted; the stores go to `scratch` or, for a full block, to `out` per `Block`'s contract.
    unsafe {
        configure();
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        );
        let (x, w0, w1) = (b.x.as_ptr(), b.w[0].as_ptr(), b.w[1].as_ptr());
        for j in (0..k2).step_by(PAIRS) {
            asm!(
                "tileloadd tmm4, [{x0} + {ldx}*1]",
                "tileloadd tmm6, [{w0} + {ldw}*1]",
                "tdpbf16ps tmm0, tmm4, tmm6",
                "tileloadd tmm7, [{w1} + {ldw}*1]",
                "tdpbf16ps tmm1, tmm4, tmm7",
                "tileloadd tmm5, [{x1} + {ldx}*1]",
                "tdpbf16ps tmm2, tmm5, tmm6",
                "tdpbf16ps tmm3, tmm5, tmm7",
                x0 = in(reg) x.add(j),
                x1 = in(reg) x.add(ROWS * k2 + j),
                ldx = in(reg) k2 * 4,
                w0 = in(reg) w0.add(j * ldw),
                w1 = in(reg) w1.add(j * ldw),
                ldw = in(reg) ldw * 4,
                options(nostack, readonly),
            );
        }
        if b.rows == BLOCK && b.cols == BLOCK {
            store(b.out, b.ldo);
        } else {
            let mut scratch = [0f32; BLOCK * BLOCK];
            store(scratch.as_mut_ptr(), BLOCK);
            for (i, row) in scratch.chunks_exact(BLOCK).take(b.rows).enumerate() {
                std::ptr::copy_nonoverlapping(row.as_ptr(), b.out.add(i * b.ldo), b.cols);
            }
        }
    }
}

/// Loads the tile configuration on this thread unless it already has.
///
/// # Safety
/// [`super::isa::Isa::amx_bf16`] must hold.
unsafe fn configure() {
    CONFIGURED.with(|done| {
        if !done.get() {
            // SAFETY: per this function's contract; CONFIG is a valid palette-1 configuration.
            unsafe {
                asm!("ldtilecfg [{}]", in(reg) CONFIG.0.as_ptr(), options(nostack, readonly))
            };
            done.set(true);
        }
    });
}

/// Stores the four output tiles as one 32 × 32 block at row stride `ld`.
///
/// # Safety
/// `out` must be valid for those writes.
unsafe fn store(out: *mut f32, ld: usize) {
    // SAFETY: per this function's contract.
    unsafe {
        asm!(
            "tilestored [{o0} + {ld}*1], tmm0",
            "tilestored [{o1} + {ld}*1], tmm1",
            "tilestored [{o2} + {ld}*1], tmm2",
            "tilestored [{o3} + {ld}*1], tmm3",
            o0 = in(reg) out,
            o1 = in(reg) out.add(ROWS),
            o2 = in(reg) out.add(ROWS * ld),
            o3 = in(reg) out.add(ROWS * ld + ROWS),
            ld = in(reg) ld * 4,
            options(nostack),
        );
    }
}
