use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::*;

/// A one-byte-length-prefixed record: `[n][n bytes]`, valid when every byte is `n`.
fn frame(n: u8) -> Vec<u8> {
    let mut out = vec![n];
    out.extend(std::iter::repeat_n(n, n as usize));
    out
}

fn decode_frame(bytes: &[u8]) -> Option<(u8, usize)> {
    let n = *bytes.first()?;
    let body = bytes.get(1..1 + n as usize)?;
    (n > 0 && body.iter().all(|&b| b == n)).then_some((n, 1 + n as usize))
}

fn decode_line(bytes: &[u8]) -> Option<(String, usize)> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&bytes[..end]).ok()?;
    line.starts_with('{').then(|| (line.to_string(), end + 1))
}

#[test]
fn a_clean_journal_recovers_every_record() {
    let bytes = [frame(3), frame(1), frame(2)].concat();
    let r = recover(&bytes, decode_frame, Framing::Binary).unwrap();
    assert_eq!(r.records, [3, 1, 2]);
    assert_eq!((r.valid, r.torn), (bytes.len(), 0));
}

#[test]
fn a_torn_tail_is_cut_wherever_the_write_stopped() {
    let good = [frame(3), frame(2)].concat();
    let last = frame(5);
    for cut in 1..last.len() {
        let bytes = [&good[..], &last[..cut]].concat();
        let r = recover(&bytes, decode_frame, Framing::Binary).unwrap();
        assert_eq!(r.records, [3, 2], "cut at {cut}");
        assert_eq!((r.valid, r.torn), (good.len(), cut));
    }
}

#[test]
fn damage_followed_by_valid_records_is_corruption() {
    let mut bytes = [frame(3), frame(4), frame(2)].concat();
    bytes[6] = 9; // inside the second record
    let err = recover(&bytes, decode_frame, Framing::Binary).unwrap_err();
    assert_eq!(err, Corruption { at: 4, resumes: 9 });
    // A zeroed region (a lost sector) before valid records is corruption too.
    let zeros = [frame(3), vec![0; 16], frame(2)].concat();
    let err = recover(&zeros, decode_frame, Framing::Binary).unwrap_err();
    assert_eq!(err.at, 4);
}

#[test]
fn lines_resume_only_at_line_starts() {
    let torn = b"{a}\n{b}\n{tor";
    let r = recover(torn, decode_line, Framing::Lines).unwrap();
    assert_eq!(r.records, ["{a}", "{b}"]);
    assert_eq!(r.torn, 4);
    // A bad line whose bytes hold a `{` mid-line is not a record start.
    let garbled = b"{a}\nxx{b}\n";
    let r = recover(garbled, decode_line, Framing::Lines).unwrap();
    assert_eq!(r.records, ["{a}"]);
    let corrupt = b"{a}\nxx\n{c}\n";
    let err = recover(corrupt, decode_line, Framing::Lines).unwrap_err();
    assert_eq!(err, Corruption { at: 4, resumes: 7 });
}

/// An in-memory file whose next operations can be made to fail.
#[derive(Default)]
struct Disk {
    bytes: Vec<u8>,
    /// The next append writes this many bytes, then fails.
    short_write: Option<usize>,
    fail_truncate: bool,
    fail_open: bool,
}

type Disks = Mutex<HashMap<PathBuf, Arc<Mutex<Disk>>>>;

fn disks() -> &'static Disks {
    static DISKS: std::sync::OnceLock<Disks> = std::sync::OnceLock::new();
    DISKS.get_or_init(Disks::default)
}

fn disk(path: &str) -> Arc<Mutex<Disk>> {
    let mut disks = disks().lock().unwrap();
    Arc::clone(disks.entry(PathBuf::from(path)).or_default())
}

struct Faulty(Arc<Mutex<Disk>>);

fn enospc() -> io::Error {
    io::Error::from_raw_os_error(28)
}

impl Segment for Faulty {
    fn open(path: &Path) -> io::Result<Self> {
        let disk = disk(path.to_str().unwrap());
        if disk.lock().unwrap().fail_open {
            return Err(enospc());
        }
        Ok(Self(disk))
    }

    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut d = self.0.lock().unwrap();
        match d.short_write.take() {
            Some(n) => {
                d.bytes.extend_from_slice(&bytes[..n]);
                Err(enospc())
            }
            None => {
                d.bytes.extend_from_slice(bytes);
                Ok(())
            }
        }
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut d = self.0.lock().unwrap();
        if d.fail_truncate {
            return Err(io::Error::from_raw_os_error(5));
        }
        d.bytes.truncate(len as usize);
        Ok(())
    }
}

fn replayed(disk: &Arc<Mutex<Disk>>) -> Vec<u8> {
    let bytes = disk.lock().unwrap().bytes.clone();
    recover(&bytes, decode_frame, Framing::Binary)
        .unwrap()
        .records
}

#[test]
fn a_failed_append_is_rolled_back_and_the_next_lands_cleanly() {
    let d = disk("short-write");
    let mut j = Journal::<Faulty>::pending("short-write".into(), 0);
    j.append(&frame(3)).unwrap();
    d.lock().unwrap().short_write = Some(2);
    let err = j.append(&frame(4)).unwrap_err();
    assert!(!err.read_only, "{err}");
    assert_eq!(d.lock().unwrap().bytes, frame(3), "partial record removed");
    j.append(&frame(2)).unwrap();
    assert_eq!(replayed(&d), [3, 2]);
    assert!(j.writable());
}

#[test]
fn a_journal_that_cannot_be_repaired_refuses_appends_until_it_can() {
    let d = disk("no-truncate");
    let mut j = Journal::<Faulty>::pending("no-truncate".into(), 0);
    j.append(&frame(3)).unwrap();
    {
        let mut d = d.lock().unwrap();
        d.short_write = Some(3);
        d.fail_truncate = true;
    }
    assert!(j.append(&frame(4)).unwrap_err().read_only);
    assert!(!j.writable());
    // While the repair keeps failing nothing is written after the garbage.
    let before = d.lock().unwrap().bytes.len();
    assert!(j.append(&frame(2)).unwrap_err().read_only);
    assert_eq!(d.lock().unwrap().bytes.len(), before);
    d.lock().unwrap().fail_truncate = false;
    j.append(&frame(2)).unwrap();
    assert!(j.writable());
    assert_eq!(replayed(&d), [3, 2]);
}

#[test]
fn a_pending_journal_opens_on_a_later_append() {
    let d = disk("late-open");
    d.lock().unwrap().fail_open = true;
    let mut j = Journal::<Faulty>::pending("late-open".into(), 0);
    assert!(j.append(&frame(1)).unwrap_err().read_only);
    d.lock().unwrap().fail_open = false;
    j.append(&frame(5)).unwrap();
    assert_eq!(replayed(&d), [5]);
}

#[test]
fn open_cuts_a_torn_tail_and_refuses_corruption_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.log");
    std::fs::write(&path, [frame(3), frame(4)[..3].to_vec()].concat()).unwrap();
    let (mut j, records) = Journal::open(&path, decode_frame, Framing::Binary).unwrap();
    assert_eq!(records, [3]);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 4);
    j.append(&frame(2)).unwrap();
    drop(j);

    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1] = 7;
    std::fs::write(&path, &bytes).unwrap();
    let err = Journal::open(&path, decode_frame, Framing::Binary)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("j.log") && err.contains("byte 0"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "a refused journal is left as found"
    );
}
