//! The digest of a cached step's arguments: every argument fed through serde into SHA-256 by a
//! serializer that writes each value's kind, length and exact bits (a float by `to_bits`, so
//! `NaN`, `-0.0` and infinities are told apart, unlike in JSON). Nothing is allocated or kept:
//! the bytes go straight into the hasher.

use serde::ser::{self, Serialize};
use sha2::{Digest, Sha256};

/// A SHA-256 digest.
pub(crate) type Hash = [u8; 32];

/// The lowercase hexadecimal text of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(DIGITS[usize::from(byte >> 4)] as char);
        text.push(DIGITS[usize::from(byte & 15)] as char);
    }
    text
}

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> Hash {
    Sha256::digest(bytes).into()
}

/// Feeds `value` into `hasher`. Fails only when the value's `Serialize` does (a custom impl
/// returning an error, a `RefCell` already borrowed).
pub(crate) fn feed<T: Serialize + ?Sized>(hasher: &mut Sha256, value: &T) -> Result<(), KeyError> {
    value.serialize(Feeder { hasher })
}

/// Why an argument could not be hashed: its `Serialize` failed.
#[derive(Debug)]
pub(crate) struct KeyError(pub(crate) String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

impl ser::Error for KeyError {
    fn custom<T: std::fmt::Display>(message: T) -> KeyError {
        KeyError(message.to_string())
    }
}

/// The serializer: writes a tag byte per value, then its bytes (lengths as `u64` little endian
/// first, so no two different values write the same bytes).
struct Feeder<'a> {
    hasher: &'a mut Sha256,
}

impl Feeder<'_> {
    fn tag(&mut self, tag: u8) {
        self.hasher.update([tag]);
    }
    fn len(&mut self, len: usize) {
        self.hasher.update((len as u64).to_le_bytes());
    }
    fn bytes(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        self.hasher.update(bytes);
    }
    fn reborrow(&mut self) -> Feeder<'_> {
        Feeder { hasher: self.hasher }
    }
}

// Tags of the value kinds.
const UNIT: u8 = 0;
const BOOL: u8 = 1;
const INT: u8 = 2;
const UINT: u8 = 3;
const F32: u8 = 4;
const F64: u8 = 5;
const CHAR: u8 = 6;
const STR: u8 = 7;
const BYTES: u8 = 8;
const NONE: u8 = 9;
const SOME: u8 = 10;
const UNIT_STRUCT: u8 = 11;
const UNIT_VARIANT: u8 = 12;
const NEWTYPE_STRUCT: u8 = 13;
const NEWTYPE_VARIANT: u8 = 14;
const SEQ: u8 = 15;
const TUPLE: u8 = 16;
const TUPLE_STRUCT: u8 = 17;
const TUPLE_VARIANT: u8 = 18;
const MAP: u8 = 19;
const STRUCT: u8 = 20;
const STRUCT_VARIANT: u8 = 21;
const I128: u8 = 22;
const U128: u8 = 23;
/// Ends a sequence or map of a length serde did not know up front.
const END: u8 = 0xff;
const SKIPPED: u8 = 0xfe;

impl<'a> ser::Serializer for Feeder<'a> {
    type Ok = ();
    type Error = KeyError;
    type SerializeSeq = Feeder<'a>;
    type SerializeTuple = Feeder<'a>;
    type SerializeTupleStruct = Feeder<'a>;
    type SerializeTupleVariant = Feeder<'a>;
    type SerializeMap = Feeder<'a>;
    type SerializeStruct = Feeder<'a>;
    type SerializeStructVariant = Feeder<'a>;

    fn serialize_bool(mut self, v: bool) -> Result<(), KeyError> {
        self.tag(BOOL);
        self.hasher.update([u8::from(v)]);
        Ok(())
    }
    // Every signed integer hashes as an i64, every unsigned one as a u64: widening a field's type
    // (u32 to u64) keeps its keys.
    fn serialize_i8(self, v: i8) -> Result<(), KeyError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), KeyError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), KeyError> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(mut self, v: i64) -> Result<(), KeyError> {
        self.tag(INT);
        self.hasher.update(v.to_le_bytes());
        Ok(())
    }
    fn serialize_i128(mut self, v: i128) -> Result<(), KeyError> {
        self.tag(I128);
        self.hasher.update(v.to_le_bytes());
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), KeyError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), KeyError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), KeyError> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(mut self, v: u64) -> Result<(), KeyError> {
        self.tag(UINT);
        self.hasher.update(v.to_le_bytes());
        Ok(())
    }
    fn serialize_u128(mut self, v: u128) -> Result<(), KeyError> {
        self.tag(U128);
        self.hasher.update(v.to_le_bytes());
        Ok(())
    }
    fn serialize_f32(mut self, v: f32) -> Result<(), KeyError> {
        self.tag(F32);
        self.hasher.update(v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_f64(mut self, v: f64) -> Result<(), KeyError> {
        self.tag(F64);
        self.hasher.update(v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_char(mut self, v: char) -> Result<(), KeyError> {
        self.tag(CHAR);
        self.hasher.update(u32::from(v).to_le_bytes());
        Ok(())
    }
    fn serialize_str(mut self, v: &str) -> Result<(), KeyError> {
        self.tag(STR);
        self.bytes(v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(mut self, v: &[u8]) -> Result<(), KeyError> {
        self.tag(BYTES);
        self.bytes(v);
        Ok(())
    }
    fn serialize_none(mut self) -> Result<(), KeyError> {
        self.tag(NONE);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(mut self, value: &T) -> Result<(), KeyError> {
        self.tag(SOME);
        value.serialize(self)
    }
    fn serialize_unit(mut self) -> Result<(), KeyError> {
        self.tag(UNIT);
        Ok(())
    }
    fn serialize_unit_struct(mut self, name: &'static str) -> Result<(), KeyError> {
        self.tag(UNIT_STRUCT);
        self.bytes(name.as_bytes());
        Ok(())
    }
    fn serialize_unit_variant(mut self, name: &'static str, index: u32, variant: &'static str) -> Result<(), KeyError> {
        self.tag(UNIT_VARIANT);
        self.variant(name, index, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.tag(NEWTYPE_STRUCT);
        self.bytes(name.as_bytes());
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), KeyError> {
        self.tag(NEWTYPE_VARIANT);
        self.variant(name, index, variant);
        value.serialize(self)
    }
    fn serialize_seq(mut self, len: Option<usize>) -> Result<Feeder<'a>, KeyError> {
        self.tag(SEQ);
        self.open(len);
        Ok(self)
    }
    fn serialize_tuple(mut self, len: usize) -> Result<Feeder<'a>, KeyError> {
        self.tag(TUPLE);
        self.len(len);
        Ok(self)
    }
    fn serialize_tuple_struct(mut self, name: &'static str, len: usize) -> Result<Feeder<'a>, KeyError> {
        self.tag(TUPLE_STRUCT);
        self.bytes(name.as_bytes());
        self.len(len);
        Ok(self)
    }
    fn serialize_tuple_variant(
        mut self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Feeder<'a>, KeyError> {
        self.tag(TUPLE_VARIANT);
        self.variant(name, index, variant);
        self.len(len);
        Ok(self)
    }
    fn serialize_map(mut self, len: Option<usize>) -> Result<Feeder<'a>, KeyError> {
        self.tag(MAP);
        self.open(len);
        Ok(self)
    }
    fn serialize_struct(mut self, name: &'static str, len: usize) -> Result<Feeder<'a>, KeyError> {
        self.tag(STRUCT);
        self.bytes(name.as_bytes());
        self.len(len);
        Ok(self)
    }
    fn serialize_struct_variant(
        mut self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Feeder<'a>, KeyError> {
        self.tag(STRUCT_VARIANT);
        self.variant(name, index, variant);
        self.len(len);
        Ok(self)
    }
}

impl Feeder<'_> {
    fn variant(&mut self, name: &str, index: u32, variant: &str) {
        self.bytes(name.as_bytes());
        self.hasher.update(index.to_le_bytes());
        self.bytes(variant.as_bytes());
    }
    /// A known length is written first; an unknown one is marked, and [`END`] closes the items.
    fn open(&mut self, len: Option<usize>) {
        match len {
            Some(len) => {
                self.tag(1);
                self.len(len);
            }
            None => self.tag(0),
        }
    }
    fn close(&mut self) {
        self.tag(END);
    }
}

impl ser::SerializeSeq for Feeder<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(self.reborrow())
    }
    fn end(mut self) -> Result<(), KeyError> {
        self.close();
        Ok(())
    }
}

impl ser::SerializeTuple for Feeder<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(self.reborrow())
    }
    fn end(self) -> Result<(), KeyError> {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Feeder<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(self.reborrow())
    }
    fn end(self) -> Result<(), KeyError> {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Feeder<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(self.reborrow())
    }
    fn end(self) -> Result<(), KeyError> {
        Ok(())
    }
}

impl ser::SerializeMap for Feeder<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), KeyError> {
        key.serialize(self.reborrow())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), KeyError> {
        value.serialize(self.reborrow())
    }
    fn end(mut self) -> Result<(), KeyError> {
        self.close();
        Ok(())
    }
}

impl ser::SerializeStruct for Feeder<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), KeyError> {
        self.bytes(key.as_bytes());
        value.serialize(self.reborrow())
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), KeyError> {
        self.tag(SKIPPED);
        self.bytes(key.as_bytes());
        Ok(())
    }
    fn end(self) -> Result<(), KeyError> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Feeder<'_> {
    type Ok = ();
    type Error = KeyError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), KeyError> {
        self.bytes(key.as_bytes());
        value.serialize(self.reborrow())
    }
    fn skip_field(&mut self, key: &'static str) -> Result<(), KeyError> {
        self.tag(SKIPPED);
        self.bytes(key.as_bytes());
        Ok(())
    }
    fn end(self) -> Result<(), KeyError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    fn digest<T: Serialize + ?Sized>(value: &T) -> Hash {
        let mut hasher = Sha256::new();
        feed(&mut hasher, value).unwrap();
        hasher.finalize().into()
    }

    #[test]
    fn floats_json_cannot_tell_apart_have_different_digests() {
        let values = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0, 0.1, 0.1 + f64::EPSILON];
        let digests: std::collections::BTreeSet<Hash> = values.iter().map(digest).collect();
        assert_eq!(digests.len(), values.len());
    }

    #[test]
    fn neighbouring_values_do_not_run_together() {
        // ("ab", "c") and ("a", "bc") would hash alike without lengths.
        assert_ne!(digest(&("ab", "c")), digest(&("a", "bc")));
        assert_ne!(digest(&vec![vec![1u8], vec![]]), digest(&vec![vec![], vec![1u8]]));
        assert_ne!(digest(&Some(())), digest(&None::<()>));
    }

    #[test]
    fn the_same_value_has_the_same_digest_and_fields_count() {
        #[derive(Serialize)]
        struct Question {
            number: u32,
            text: String,
        }
        let a = Question { number: 1, text: "What is 2 + 2?".into() };
        let b = Question { number: 1, text: "What is 2 + 2?".into() };
        let c = Question { number: 2, text: "What is 2 + 2?".into() };
        assert_eq!(digest(&a), digest(&b));
        assert_ne!(digest(&a), digest(&c));
        assert_eq!(hex(&[0x0f, 0xa0]), "0fa0");
    }
}
