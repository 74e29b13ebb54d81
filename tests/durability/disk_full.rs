//! ENOSPC under live writes: the index lives on a small tmpfs that the test fills to the last
//! byte, so appends fail part-way through a record, as on a real full disk.

use std::{
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use super::{assert_state, put, put_all, serve_index, stop, Expected};
use crate::recommend::Fixture;

/// A tmpfs of a fixed size mounted on a temp dir; unmounted on drop.
pub(super) struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (with the reason printed) where this process may not mount.
    pub(super) fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Self { dir }),
            Ok(out) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs to fill ({}); run as root or with \
                     CAP_SYS_ADMIN to test a full disk",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
                None
            }
            Err(err) => {
                eprintln!("SKIPPED: no `mount` command ({err}) to make a disk to fill");
                None
            }
        }
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Fills the filesystem of `dir` to the last byte with one file; returns it.
pub(super) fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = fs::File::create(&path).unwrap();
    for chunk in [64 << 10, 4 << 10, 64, 1] {
        while file.write_all(&vec![0xAB; chunk]).is_ok() {}
    }
    path
}

#[tokio::test]
async fn a_full_disk_refuses_writes_and_loses_no_acknowledged_one() {
    let Some(disk) = Tmpfs::mount("2m") else {
        return;
    };
    let fx = Fixture::new(&[]);
    let index = disk.path().join("index");
    copy_dir(&fx.dir.path().join("index"), &index);
    let mut server = serve_index(&fx, &index).await;
    let mut expected = Expected::new();
    put_all(
        &server,
        &mut expected,
        (0..5).map(|i| format!("before-{i}")),
    )
    .await;

    let filler = fill(disk.path());
    let mut refused = 0;
    for i in 0..40 {
        let id = format!("full-{i}");
        let (status, retry_after, body) = put(&server, &id, i).await;
        match status {
            200 | 201 => {
                expected.insert(id, Some(i));
            }
            503 => {
                assert_eq!(body["code"], "storage_unavailable", "{body}");
                assert!(retry_after.is_some(), "503 without Retry-After");
                refused += 1;
                expected.insert(id, None);
            }
            other => panic!("{id}: {other} {body}"),
        }
    }
    assert!(refused > 0, "a full disk refused nothing");
    let rolled_back = server
        .metric(
            "inferd_index_write_failures_total",
            &[r#"outcome="rolled_back""#],
        )
        .await;
    assert_eq!(rolled_back, refused as f64);
    assert_state(&server, &expected, "a refused write").await;

    fs::remove_file(filler).unwrap();
    put_all(
        &server,
        &mut expected,
        (0..10).map(|i| format!("after-{i}")),
    )
    .await;
    server.sigkill();

    let mut server = serve_index(&fx, &index).await;
    assert_state(&server, &expected, "SIGKILL").await;
    put_all(
        &server,
        &mut expected,
        (0..5).map(|i| format!("restarted-{i}")),
    )
    .await;
    stop(&mut server).await;

    let server = serve_index(&fx, &index).await;
    assert_state(&server, &expected, "SIGTERM").await;
}
