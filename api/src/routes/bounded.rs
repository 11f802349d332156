//! `Bounded`: a JSON string field whose document states the length bounds
//! the domain enforces, taken from the domain's own constants as const
//! generic arguments (`Bounded<1, { TaskTitle::MAX }>`), so the document and
//! the server cannot drift apart.
//!
//! It only parses: the bounds are checked by the domain value the field
//! becomes, which answers 422 with a code naming the rule. Unlike poem's
//! `String`, it refuses numbers and booleans where a string is due. With
//! `SECRET`, the schema says `format: password` and `Debug` prints nothing.
//! A leaf: it imports nothing of the crate.

use std::borrow::Cow;
use std::fmt;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// A string of `MIN..=MAX` characters (Unicode code points), as documented.
#[derive(Clone, PartialEq, Eq)]
pub struct Bounded<const MIN: usize, const MAX: usize, const SECRET: bool = false>(pub String);

/// A password field: `format: password`, never printed.
pub type BoundedSecret<const MIN: usize, const MAX: usize> = Bounded<MIN, MAX, true>;

impl<const MIN: usize, const MAX: usize, const SECRET: bool> Bounded<MIN, MAX, SECRET> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MIN: usize, const MAX: usize, const SECRET: bool> fmt::Debug
    for Bounded<MIN, MAX, SECRET>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if SECRET {
            f.write_str("[redacted]")
        } else {
            fmt::Debug::fmt(&self.0, f)
        }
    }
}

impl<const MIN: usize, const MAX: usize, const SECRET: bool> Type for Bounded<MIN, MAX, SECRET> {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        if SECRET {
            "string_password".into()
        } else {
            "string".into()
        }
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = if SECRET {
            MetaSchema::new_with_format("string", "password")
        } else {
            MetaSchema::new("string")
        };
        schema.min_length = (MIN > 0).then_some(MIN);
        schema.max_length = Some(MAX);
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const MIN: usize, const MAX: usize, const SECRET: bool> ParseFromJSON
    for Bounded<MIN, MAX, SECRET>
{
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => Ok(Self(text)),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl<const MIN: usize, const MAX: usize, const SECRET: bool> ToJSON for Bounded<MIN, MAX, SECRET> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_states_the_bounds_and_the_format() {
        let MetaSchemaRef::Inline(schema) = Bounded::<1, 200>::schema_ref() else {
            panic!("inline schema expected");
        };
        assert_eq!((schema.min_length, schema.max_length), (Some(1), Some(200)));
        assert_eq!(schema.format, None);
        let MetaSchemaRef::Inline(schema) = BoundedSecret::<8, 128>::schema_ref() else {
            panic!("inline schema expected");
        };
        assert_eq!(schema.format, Some("password"));
    }

    #[test]
    fn only_strings_parse_and_lengths_are_left_to_the_domain() {
        let long = Bounded::<1, 3>::parse_from_json(Some(Value::from("four"))).unwrap();
        assert_eq!(long.as_str(), "four");
        assert!(Bounded::<1, 3>::parse_from_json(Some(Value::from(12))).is_err());
        assert!(Bounded::<1, 3>::parse_from_json(Some(Value::Bool(true))).is_err());
        assert!(Bounded::<1, 3>::parse_from_json(Some(Value::Null)).is_err());
    }

    #[test]
    fn a_secret_is_never_printed() {
        let secret: BoundedSecret<8, 128> = Bounded("hunter2 hunter2".to_owned());
        assert_eq!(format!("{secret:?}"), "[redacted]");
    }
}
