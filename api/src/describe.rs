//! Descriptions schemars cannot take from doc comments: those of an array's items, a map's values and the
//! insides of types from other crates. `kubectl explain` and editors show them, and the CRD test requires
//! one on every field.

use schemars::Schema;
use schemars::transform::Transform;

/// Describes the part of a field's schema at a JSON pointer, e.g. `/items` of an array or
/// `/additionalProperties` of a map: `#[schemars(transform = Describe("/items", "A subnet ID."))]`.
pub(crate) struct Describe(pub &'static str, pub &'static str);

impl Transform for Describe {
    fn transform(&mut self, schema: &mut Schema) {
        let Describe(pointer, description) = *self;
        // A pointer that finds nothing leaves the field undescribed, which the CRD test reports by path.
        if let Some(inner) = schema.pointer_mut(pointer).and_then(|inner| inner.as_object_mut()) {
            inner.insert("description".to_owned(), description.into());
        }
    }
}
