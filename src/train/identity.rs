//! A run's identity: the canonical form of its resolved configuration, from which a study
//! names the run (the first 16 hex digits of its SHA-256).
//!
//! The identity is a function of what the configuration *means*, not of how `config.json`
//! happens to be written: every setting added after the form was fixed is declared once, in
//! [`ADDED`], with the value that means "as before it existed", and is left out of the
//! canonical form while it has that value. So a new option, at its default, changes no
//! existing run's ID, and `config.json` may spell out every setting.
//!
//! Version 1 of the form (the only one so far) is the configuration's compact JSON, fields in
//! their declaration order, without the [`ADDED`] settings at their neutral values: exactly
//! the bytes runs were named by before the form had a name, so every run directory made
//! before keeps its ID. A change to the form that cannot keep the IDs would be version 2,
//! hashed with a `v2` prefix so that no form collides with another.

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::TrainConfig;

/// A setting's path in `config.json` and the value that means "as before it existed".
pub type Added = (&'static [&'static str], fn() -> Value);

/// Settings added after version 1. A new setting goes here, and nowhere else, to keep IDs.
pub const ADDED: &[Added] = &[
    (&["data", "dataset"], || json!("mnist")),
    (&["data", "distort"], || json!(false)),
    (&["vary"], || Value::Null),
    (&["instruments"], || json!("none")),
    (&["instruments_every"], || json!(1)),
    (&["optimizer", "algorithm", "curvature_samples"], || {
        json!(crate::optim::rules::CURVATURE_SAMPLES)
    }),
    (&["optimizer", "algorithm", "curvature_every"], || json!(0)),
    (&["model", "init"], || json!("default")),
    (&["model", "map_j"], || json!(crate::nn::loss::MAP_J)),
    (&["model", "prototypes"], || json!("plain")),
];

/// The canonical form of `config`, version 1 (see the module's documentation).
pub fn canonical(config: &TrainConfig) -> String {
    without_added(config)
}

/// `value`'s compact JSON, fields in their written order, without the [`ADDED`] settings at
/// their neutral values, read at their paths from `value`'s root: a configuration, or a
/// model file's metadata (whose `model` is the configuration's), which so stays byte for
/// byte what it was before the settings existed.
pub fn without_added(value: &impl Serialize) -> String {
    let json = serde_json::to_string(value).expect("a configuration serialises");
    let mut form: Ordered = serde_json::from_str(&json).expect("its own JSON parses");
    for (path, neutral) in ADDED {
        form.remove_if(path, &neutral());
    }
    serde_json::to_string(&form).expect("serialisable")
}

/// The ID of a run: the first 16 hex digits of the SHA-256 of its canonical form.
pub fn run_id(config: &TrainConfig) -> String {
    Sha256::digest(canonical(config).as_bytes())
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A JSON value whose objects keep their fields in the order written (`serde_json::Value`
/// sorts them, which would change the form).
#[derive(Debug)]
enum Ordered {
    Object(Vec<(String, Ordered)>),
    Array(Vec<Ordered>),
    Leaf(Value),
}

impl Ordered {
    /// Removes the field at `path` when it equals `neutral`.
    fn remove_if(&mut self, path: &[&str], neutral: &Value) {
        let Ordered::Object(fields) = self else {
            return;
        };
        let Some((first, rest)) = path.split_first() else {
            return;
        };
        let Some(i) = fields.iter().position(|(k, _)| k == first) else {
            return;
        };
        if rest.is_empty() {
            if matches!(&fields[i].1, Ordered::Leaf(v) if v == neutral) {
                fields.remove(i);
            }
        } else {
            fields[i].1.remove_if(rest, neutral);
        }
    }
}

impl Serialize for Ordered {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Ordered::Object(fields) => {
                let mut map = s.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Ordered::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Ordered::Leaf(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OrderedVisitor)
    }
}

struct OrderedVisitor;

impl<'de> Visitor<'de> for OrderedVisitor {
    type Value = Ordered;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(v.into()))
    }

    fn visit_str<E>(self, v: &str) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(Value::String(v.to_string())))
    }

    fn visit_unit<E>(self) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Ordered, E> {
        Ok(Ordered::Leaf(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element()? {
            items.push(v);
        }
        Ok(Ordered::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Ordered>()? {
            fields.push((k, v));
        }
        Ok(Ordered::Object(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The form keeps the written order and drops only the added settings at their neutral
    /// values; any other value of them is part of the identity.
    #[test]
    fn added_settings_at_their_neutral_values_leave_the_form() {
        let mut config = crate::train::options::Options::default().resolve().unwrap();
        let plain = canonical(&config);
        assert!(
            plain.starts_with("{\"model\":{\"arch\":\"lenet5\""),
            "{plain}"
        );
        assert!(
            !plain.contains("distort") && !plain.contains("vary"),
            "{plain}"
        );
        config.data.distort = true;
        let distorted = canonical(&config);
        assert!(distorted.contains("\"distort\":true"), "{distorted}");
        assert_ne!(run_id(&config), {
            config.data.distort = false;
            run_id(&config)
        });
    }
}
