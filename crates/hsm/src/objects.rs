//! Finding a key's objects on a token by the URI's label and id.

use cryptoki::object::{Attribute, ObjectClass, ObjectHandle};
use cryptoki::session::Session;

use crate::fault::Fault;
use crate::metrics::ErrorKind;
use crate::uri::KeyUri;

/// The search template for `uri`'s object of `class`.
pub(crate) fn template(uri: &KeyUri, class: ObjectClass) -> Vec<Attribute> {
    let mut t = vec![Attribute::Class(class)];
    if let Some(label) = &uri.object {
        t.push(Attribute::Label(label.as_bytes().to_vec()));
    }
    if let Some(id) = &uri.id {
        t.push(Attribute::Id(id.clone()));
    }
    t
}

pub(crate) fn first_object(
    session: &Session,
    uri: &KeyUri,
    class: ObjectClass,
) -> Result<Option<ObjectHandle>, Fault> {
    let found = session
        .find_objects(&template(uri, class))
        .map_err(|e| Fault::from_ck("finding the key", e))?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(Fault::new(
            ErrorKind::KeyMissing,
            format!(
                "{uri} matches {} objects; name one key (add id=)",
                found.len()
            ),
        )),
    }
}

/// The private key `uri` names; it must be one EC key that may sign.
pub(crate) fn find_private(session: &Session, uri: &KeyUri) -> Result<ObjectHandle, Fault> {
    first_object(session, uri, ObjectClass::PRIVATE_KEY)?.ok_or_else(|| Fault {
        kind: ErrorKind::KeyMissing,
        message: format!("no private key {uri} on the token"),
    })
}
