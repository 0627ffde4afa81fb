//! TensorBoard's event files, written by hand (about a hundred lines, no protobuf or
//! TensorFlow dependency), so that `tensorboard --logdir DIR` shows every run's per-epoch
//! metrics (training and validation loss and accuracy, and the learning rate) and, when the
//! run records them, its per-step instruments.
//!
//! A file is a sequence of records, each
//!
//! ```text
//! u64 length (little-endian) | u32 masked CRC-32C of the length bytes | data | u32 masked CRC-32C of data
//! ```
//!
//! where a masked CRC is `((crc >> 15) | (crc << 17)) + 0xa282ead8` (TensorFlow's
//! `record_writer`). Each record's data is an `Event` protocol buffer: the first holds
//! `file_version = "brain.Event:2"`, the others `wall_time`, `step` and a `Summary` of
//! `Value { tag, simple_value }` scalars (tensorflow/core/util/event.proto and
//! framework/summary.proto: field numbers 1 wall_time (double), 2 step (int64), 3
//! file_version (string), 5 summary; Summary.value = 1; Value.tag = 1, Value.simple_value = 2
//! (float)).
//!
//! The file is made from the run's metrics, all epochs at once, and rewritten after each
//! epoch, so a paused and resumed run ends with the same file (but for wall times) as one
//! that ran straight through. Its wall times are the run's seconds since it started.

use super::EpochMetrics;
use super::instruments::Recorder;

/// The event file's name in a run directory (TensorBoard reads any name holding `tfevents`).
pub const EVENTS: &str = "events.out.tfevents.lenet";

/// The event file of a run with these epochs and, when it records them, these instruments:
/// each recorded step's values as scalars `instruments/COLUMN` at its global step, stamped
/// with the wall time its epoch ended at (the rows hold no timing).
pub fn events(history: &[EpochMetrics], instruments: Option<&Recorder>) -> Vec<u8> {
    let mut out = epoch_events(history);
    let Some(recorder) = instruments else {
        return out;
    };
    let walls: Vec<f64> = (history.iter())
        .scan(0.0, |wall, m| {
            *wall += m.seconds;
            Some(*wall)
        })
        .collect();
    let header = recorder.header();
    let tags: Vec<String> = (header.split(',').skip(2))
        .map(|c| format!("instruments/{c}"))
        .collect();
    for row in &recorder.rows {
        let epoch = row[0] as usize;
        let wall = walls.get(epoch.saturating_sub(1)).or(walls.last()).copied();
        let values: Vec<(&str, f64)> = (tags.iter().map(String::as_str))
            .zip(row[2..].iter().copied())
            .collect();
        let event = scalar_event(wall.unwrap_or(0.0), row[1] as u64, &values);
        record(&mut out, &event);
    }
    out
}

/// The event file of a run with these epochs.
fn epoch_events(history: &[EpochMetrics]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut header = Vec::new();
    double_field(&mut header, 1, 0.0);
    bytes_field(&mut header, 3, b"brain.Event:2");
    record(&mut out, &header);
    let mut wall = 0.0;
    for m in history {
        wall += m.seconds;
        let mut values = vec![
            ("loss/train", m.train_loss),
            ("accuracy/train", m.train_accuracy),
            ("learning_rate", m.lr),
        ];
        values.extend(m.valid_loss.map(|v| ("loss/valid", v)));
        values.extend(m.valid_accuracy.map(|v| ("accuracy/valid", v)));
        record(&mut out, &scalar_event(wall, m.epoch as u64, &values));
    }
    out
}

/// An `Event` at `wall` seconds and `step` with one scalar per `(tag, value)`.
fn scalar_event(wall: f64, step: u64, values: &[(&str, f64)]) -> Vec<u8> {
    let mut summary = Vec::new();
    for (tag, value) in values {
        let mut v = Vec::new();
        bytes_field(&mut v, 1, tag.as_bytes());
        key(&mut v, 2, 5);
        v.extend_from_slice(&(*value as f32).to_le_bytes());
        bytes_field(&mut summary, 1, &v);
    }
    let mut event = Vec::new();
    double_field(&mut event, 1, wall);
    key(&mut event, 2, 0);
    varint(&mut event, step);
    bytes_field(&mut event, 5, &summary);
    event
}

/// A protocol buffer field's key: its number and wire type (0 varint, 1 64-bit, 2
/// length-delimited, 5 32-bit).
fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn double_field(out: &mut Vec<u8>, field: u64, v: f64) {
    key(out, field, 1);
    out.extend_from_slice(&v.to_le_bytes());
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// One record: the length, its masked CRC, the data, the data's masked CRC.
fn record(out: &mut Vec<u8>, data: &[u8]) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
}

fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), byte by byte from a table.
fn crc32c(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32C's check value, and the record framing read back.
    #[test]
    fn crc32c_and_records_are_tensorflows() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        let m = EpochMetrics {
            epoch: 1,
            lr: 1e-3,
            train_loss: 0.5,
            train_accuracy: 0.9,
            valid_loss: None,
            valid_accuracy: None,
            train_seconds: 1.0,
            seconds: 1.5,
        };
        let file = epoch_events(&[m]);
        let mut at = 0;
        let mut records = 0;
        while at < file.len() {
            let len_bytes: [u8; 8] = file[at..at + 8].try_into().unwrap();
            let len = u64::from_le_bytes(len_bytes) as usize;
            let crc = u32::from_le_bytes(file[at + 8..at + 12].try_into().unwrap());
            assert_eq!(crc, masked_crc(&len_bytes));
            let data = &file[at + 12..at + 12 + len];
            let crc = u32::from_le_bytes(file[at + 12 + len..at + 16 + len].try_into().unwrap());
            assert_eq!(crc, masked_crc(data));
            at += 16 + len;
            records += 1;
        }
        assert_eq!(records, 2);
        assert!(file.windows(13).any(|w| w == b"brain.Event:2"));
    }
}
