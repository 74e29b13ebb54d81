//! Building a graph: parallel insertion over the rayon pool, a lock per node, links as atomics
//! so searches of concurrent insertions read them without locking.

use std::sync::{
    atomic::{AtomicU32, Ordering::Relaxed},
    Mutex,
};

use rayon::prelude::*;

use super::{descend, search_layer, Graph, Layout, Links, Params, Scored, VisitedPool, HEAD_WORDS};
use crate::index::{mapped::Words, quant::Codes};

/// A graph being built: atomic links and a lock per node.
pub(super) struct Builder<'a> {
    codes: &'a Codes,
    params: Params,
    layout: Layout,
    layer0: Vec<AtomicU32>,
    upper: Vec<AtomicU32>,
    locks: Vec<Mutex<()>>,
    entry: Mutex<(u32, u8)>,
    visited: VisitedPool,
}

impl Links for Builder<'_> {
    fn neighbours(&self, node: u32, level: u8, out: &mut Vec<u32>) {
        let list = self.list(node, level);
        let count = (list[0].load(Relaxed) as usize).min(list.len() - 1);
        out.clear();
        out.extend(list[1..1 + count].iter().map(|a| a.load(Relaxed)));
    }
}

impl<'a> Builder<'a> {
    pub(super) fn new(codes: &'a Codes, params: Params) -> Self {
        let rows = codes.rows();
        let layout = Layout::new(rows, params.m.max(2));
        let atomics = |n: usize| (0..n).map(|_| AtomicU32::new(0)).collect::<Vec<_>>();
        Self {
            codes,
            params,
            layer0: atomics(rows * (layout.m0() + 1)),
            upper: atomics(layout.upper_len),
            locks: (0..rows).map(|_| Mutex::new(())).collect(),
            entry: Mutex::new((0, layout.levels.first().copied().unwrap_or(0))),
            visited: VisitedPool {
                rows,
                free: Mutex::new(Vec::new()),
            },
            layout,
        }
    }

    fn list(&self, node: u32, level: u8) -> &[AtomicU32] {
        let range = self.layout.slot(node, level);
        if level == 0 {
            &self.layer0[range]
        } else {
            &self.upper[range]
        }
    }

    fn set_list(&self, node: u32, level: u8, links: &[Scored]) {
        let list = self.list(node, level);
        for (slot, s) in list[1..].iter().zip(links) {
            slot.store(s.1, Relaxed);
        }
        list[0].store(links.len() as u32, Relaxed);
    }

    pub(super) fn run(self) -> Graph {
        let rows = self.layout.rows;
        // Rows one by one until the graph has a few layers, then in parallel (the first
        // insertions contend on the same few nodes).
        let serial = rows.min(1000);
        (1..serial as u32).for_each(|row| self.insert(row));
        (serial as u32..rows as u32)
            .into_par_iter()
            .for_each(|row| self.insert(row));
        self.finish()
    }

    fn insert(&self, node: u32) {
        let prepared = self.codes.quantizer().prepare_codes(self.codes.row(node));
        let score = |row: u32| prepared.score(self.codes.row(row));
        let level = self.layout.levels[node as usize];
        let (entry, top) = *self.entry.lock().expect("entry lock");
        self.visited.with(|visited| {
            let mut eps = descend(self, &score, entry, top, level.min(top), visited);
            for l in (0..=level.min(top)).rev() {
                visited.start();
                let found =
                    search_layer(self, &score, &eps, self.params.ef_construction, l, visited);
                let chosen = self.select(&found, self.layout.m);
                {
                    let _guard = self.locks[node as usize].lock().expect("node lock");
                    self.set_list(node, l, &chosen);
                }
                for s in &chosen {
                    self.link(s.1, Scored(s.0, node), l);
                }
                eps = found;
            }
        });
        if level > top {
            let mut entry = self.entry.lock().expect("entry lock");
            if level > entry.1 {
                *entry = (node, level);
            }
        }
    }

    /// The HNSW heuristic: up to `m` of `candidates` (best first), each nearer the base than
    /// to every one kept before it.
    fn select(&self, candidates: &[Scored], m: usize) -> Vec<Scored> {
        let mut kept: Vec<Scored> = Vec::with_capacity(m);
        for &c in candidates {
            if kept.len() >= m {
                break;
            }
            let from_c = self.codes.quantizer().prepare_codes(self.codes.row(c.1));
            if kept.iter().all(|k| from_c.score(self.codes.row(k.1)) < c.0) {
                kept.push(c);
            }
        }
        kept
    }

    /// Adds `new` (scored from `node`) to `node`'s list at `level`, pruning when full.
    fn link(&self, node: u32, new: Scored, level: u8) {
        let _guard = self.locks[node as usize].lock().expect("node lock");
        let cap = if level == 0 {
            self.layout.m0()
        } else {
            self.layout.m
        };
        let list = self.list(node, level);
        let count = list[0].load(Relaxed) as usize;
        if count < cap {
            list[1 + count].store(new.1, Relaxed);
            list[0].store(count as u32 + 1, Relaxed);
            return;
        }
        let from = self.codes.quantizer().prepare_codes(self.codes.row(node));
        let mut all: Vec<Scored> = list[1..1 + count]
            .iter()
            .map(|a| {
                let r = a.load(Relaxed);
                Scored(from.score(self.codes.row(r)), r)
            })
            .collect();
        all.push(new);
        all.sort_by(|a, b| b.cmp(a));
        let kept = self.select(&all, cap);
        self.set_list(node, level, &kept);
    }

    fn finish(self) -> Graph {
        let layout = self.layout;
        let (entry, top) = self.entry.into_inner().expect("entry lock");
        let rows = layout.rows;
        let mut words = Vec::with_capacity(
            HEAD_WORDS + rows.div_ceil(4) + rows + self.layer0.len() + self.upper.len(),
        );
        let m = layout.m;
        words.extend([
            rows as u32,
            (rows as u64 >> 32) as u32,
            m as u32,
            2 * m as u32,
            entry,
            top as u32,
            layout.upper_len as u32,
            (layout.upper_len as u64 >> 32) as u32,
        ]);
        words.extend(
            layout
                .levels
                .chunks(4)
                .map(|l| l.iter().rev().fold(0u32, |w, &b| (w << 8) | b as u32)),
        );
        words.extend_from_slice(&layout.upper_off);
        let l0 = words.len()..words.len() + self.layer0.len();
        words.extend(self.layer0.into_iter().map(AtomicU32::into_inner));
        let up = words.len()..words.len() + self.upper.len();
        words.extend(self.upper.into_iter().map(AtomicU32::into_inner));
        Graph {
            visited: VisitedPool {
                rows,
                free: Mutex::new(Vec::new()),
            },
            layout,
            words: Words::Owned(words),
            layer0: l0,
            upper: up,
            entry,
            top,
        }
    }
}
