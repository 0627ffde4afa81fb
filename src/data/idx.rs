//! The IDX file format of MNIST, raw or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number — two zero bytes, a type code (0x08 for unsigned
//! bytes) and the number of dimensions — then each dimension as a big-endian u32, then the
//! values in row-major order. MNIST uses 0x00000803 for images `[count, 28, 28]` and
//! 0x00000801 for labels `[count]`.
//!
//! reference: <http://yann.lecun.com/exdb/mnist/> (the format is described at the bottom).

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::DataError;

/// An IDX array of unsigned bytes: its dimensions and its values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub values: Vec<u8>,
}

/// The kind of file expected, which fixes the number of dimensions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxKind {
    /// `[count, rows, cols]`, magic 0x00000803.
    Images,
    /// `[count]`, magic 0x00000801.
    Labels,
}

impl IdxKind {
    pub fn magic(self) -> u32 {
        match self {
            IdxKind::Images => 0x0000_0803,
            IdxKind::Labels => 0x0000_0801,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            IdxKind::Images => "an IDX image file (magic 0x00000803)",
            IdxKind::Labels => "an IDX label file (magic 0x00000801)",
        }
    }
}

/// Reads an IDX file of the given kind, decompressing it when its name ends in `.gz`.
///
/// The file is read as a stream: the header first, then exactly as many values as its
/// dimensions promise, and one byte more to detect extra data. So a compressed file that
/// inflates to far more than its header says (a "zip bomb") costs no more memory than the
/// promised array, and is rejected. A `.gz` file must hold one gzip member and nothing after
/// it, as a raw file must end where its values do.
pub fn read(path: &Path, kind: IdxKind) -> Result<IdxArray, DataError> {
    let file = std::fs::File::open(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let input = BufReader::new(file);
    if path.extension().is_none_or(|e| e != "gz") {
        return read_from(input, kind, path);
    }
    let corrupt_gzip = |e: std::io::Error| DataError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("not a valid gzip stream ({e})"),
    };
    let mut decoder = flate2::bufread::GzDecoder::new(input);
    let array = read_from(&mut decoder, kind, path).map_err(|e| match e {
        DataError::Io { source, .. } => corrupt_gzip(source),
        other => other,
    })?;
    let mut rest = decoder.into_inner();
    let trailing = rest.fill_buf().map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !trailing.is_empty() {
        return Err(DataError::Corrupt {
            path: path.to_path_buf(),
            reason: "trailing data after the gzip stream: expected one gzip member holding the \
                     IDX file"
                .into(),
        });
    }
    Ok(array)
}

/// Decompresses a gzip stream held in memory, refusing to inflate past `limit` bytes (a
/// downloaded file larger than any MNIST file is not one).
pub fn gunzip(bytes: &[u8], limit: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity((bytes.len() * 4).min(limit));
    let mut decoder = flate2::read::GzDecoder::new(bytes);
    (&mut decoder)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("inflates to more than {limit} bytes"),
        ));
    }
    Ok(out)
}

/// Parses an IDX file of the given kind from its (uncompressed) bytes. `path` only names the
/// file in errors.
pub fn parse(bytes: &[u8], kind: IdxKind, path: &Path) -> Result<IdxArray, DataError> {
    read_from(bytes, kind, path)
}

/// Reads one IDX array from `input`, which must end right after its values.
fn read_from(mut input: impl Read, kind: IdxKind, path: &Path) -> Result<IdxArray, DataError> {
    let corrupt = |reason: String| DataError::Corrupt {
        path: PathBuf::from(path),
        reason,
    };
    let io = |source| DataError::Io {
        path: PathBuf::from(path),
        source,
    };
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut input, &mut magic).map_err(io)?;
    if got < 4 {
        return Err(corrupt(format!(
            "file is {got} bytes long, too short for an IDX header; expected {}",
            kind.describe()
        )));
    }
    let found = u32::from_be_bytes(magic);
    if found != kind.magic() {
        return Err(DataError::BadMagic {
            path: PathBuf::from(path),
            found,
            expected: kind.describe(),
        });
    }
    let ndims = magic[3] as usize;
    let mut header = vec![0u8; 4 * ndims];
    let got = read_up_to(&mut input, &mut header).map_err(io)?;
    if got < header.len() {
        return Err(corrupt(format!(
            "truncated header: {} bytes, expected at least {}",
            4 + got,
            4 + header.len()
        )));
    }
    let dims: Vec<usize> = header
        .chunks_exact(4)
        .map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| corrupt(format!("dimensions {dims:?} overflow")))?;
    // The buffer grows with what arrives, so a header that promises terabytes costs nothing
    // until they come.
    let mut values = Vec::with_capacity(expected.min(1 << 26));
    input
        .take(expected as u64 + 1)
        .read_to_end(&mut values)
        .map_err(io)?;
    if values.len() > expected {
        return Err(corrupt(format!(
            "trailing data: dimensions {dims:?} need {expected} bytes of data, and the file \
             holds more"
        )));
    }
    if values.len() < expected {
        return Err(DataError::WrongLength {
            path: PathBuf::from(path),
            dims,
            expected,
            found: values.len(),
        });
    }
    Ok(IdxArray { dims, values })
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Encodes an IDX array (used to write subsets and test files).
pub fn encode(array: &IdxArray) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * array.dims.len() + array.values.len());
    out.extend_from_slice(&[0, 0, 0x08, array.dims.len() as u8]);
    for &d in &array.dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(&array.values);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(values: &[u8]) -> Vec<u8> {
        encode(&IdxArray {
            dims: vec![values.len()],
            values: values.to_vec(),
        })
    }

    #[test]
    fn round_trip() {
        let a = IdxArray {
            dims: vec![2, 3, 2],
            values: (0..12).collect(),
        };
        let parsed = parse(&encode(&a), IdxKind::Images, Path::new("x")).unwrap();
        assert_eq!(parsed, a);
    }

    #[test]
    fn trailing_data_is_an_error() {
        let mut bytes = labels(&[1, 2, 3, 4]);
        bytes.push(0);
        let msg = parse(&bytes, IdxKind::Labels, Path::new("l.idx"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("trailing data") && msg.contains("4 bytes"),
            "{msg}"
        );
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn read_gz_file(content: &[u8]) -> Result<IdxArray, DataError> {
        let dir = tempfile_dir();
        let path = dir.join("t10k-labels-idx1-ubyte.gz");
        std::fs::write(&path, content).unwrap();
        let result = read(&path, IdxKind::Labels);
        std::fs::remove_dir_all(&dir).unwrap();
        result
    }

    fn tempfile_dir() -> PathBuf {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lenet-idx-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A gzip file reads like the raw one; one that inflates past its header's promise (here
    /// a header for 4 labels followed by a megabyte of zeros), or that carries a second gzip
    /// member or garbage after its stream, is rejected.
    #[test]
    fn gzip_files_hold_exactly_one_idx_array() {
        let good = labels(&[1, 2, 3, 4]);
        assert_eq!(read_gz_file(&gz(&good)).unwrap().values, vec![1, 2, 3, 4]);
        let mut bomb = good.clone();
        bomb.extend(std::iter::repeat_n(0u8, 1 << 20));
        let msg = read_gz_file(&gz(&bomb)).unwrap_err().to_string();
        assert!(msg.contains("trailing data"), "{msg}");
        for extra in [gz(b"garbage"), b"garbage".to_vec()] {
            let mut two = gz(&good);
            two.extend(extra);
            let msg = read_gz_file(&two).unwrap_err().to_string();
            assert!(msg.contains("trailing data after the gzip stream"), "{msg}");
        }
        let mut broken = gz(&good);
        let last = broken.len() - 5;
        broken[last] ^= 0xff; // the CRC
        let msg = read_gz_file(&broken).unwrap_err().to_string();
        assert!(msg.contains("not a valid gzip stream"), "{msg}");
    }

    #[test]
    fn gunzip_stops_at_its_limit() {
        let big = gz(&vec![0u8; 10_000]);
        assert_eq!(gunzip(&big, 10_000).unwrap().len(), 10_000);
        assert!(gunzip(&big, 9_999).is_err());
    }

    #[test]
    fn truncated_file_is_an_error_naming_the_lengths() {
        let mut bytes = labels(&[1, 2, 3, 4]);
        bytes.pop();
        let err = parse(&bytes, IdxKind::Labels, Path::new("l.idx")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("l.idx") && msg.contains("need 4 bytes") && msg.contains("found 3"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_kind_is_a_magic_error() {
        let bytes = labels(&[1, 2]);
        let err = parse(&bytes, IdxKind::Images, Path::new("f")).unwrap_err();
        assert!(
            matches!(err, DataError::BadMagic { found: 0x801, .. }),
            "{err}"
        );
    }

    #[test]
    fn tiny_and_empty_files_are_errors() {
        for bytes in [&[][..], &[0, 0][..], &[0, 0, 8, 3, 0][..]] {
            assert!(parse(bytes, IdxKind::Images, Path::new("f")).is_err());
        }
    }
}
