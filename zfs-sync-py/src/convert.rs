//! Conversions between Python values and the core's types, each failure naming its field.
//!
//! Inputs are liberal where Python users expect it (a `uuid.UUID` or its string, an aware
//! `datetime` or an RFC 3339 string); outputs of `to_dict()` are JSON-ready (strings for ids
//! and times) so that they can go straight into `json.dumps` or an HTTP request.

use chrono::{DateTime, Utc};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::errors::invalid;

/// A Python value as JSON: dicts with string keys, lists, tuples, strings, booleans, integers
/// that fit 64 bits, finite floats, `None`; `uuid.UUID` and `datetime` become strings.
pub(crate) fn py_to_json(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.extract()?));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(v) = obj.extract::<i64>() {
            return Ok(Value::from(v));
        }
        if let Ok(v) = obj.extract::<u64>() {
            return Ok(Value::from(v));
        }
        return Err(invalid(field, "is an integer outside the 64-bit range"));
    }
    if obj.is_instance_of::<PyFloat>() {
        let f: f64 = obj.extract()?;
        return serde_json::Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| invalid(field, "must be a finite number"));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.to_string()));
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut map = Map::new();
        for (k, v) in d.iter() {
            let Ok(key) = k.cast::<PyString>() else {
                return Err(invalid(field, "must be a dict with string keys"));
            };
            let key = key.to_cow()?.to_string();
            let value = py_to_json(&v, &format!("{field}.{key}"))?;
            map.insert(key, value);
        }
        return Ok(Value::Object(map));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for (i, v) in obj.try_iter()?.enumerate() {
            items.push(py_to_json(&v?, &format!("{field}[{i}]"))?);
        }
        return Ok(Value::Array(items));
    }
    if let Ok(u) = obj.extract::<Uuid>() {
        return Ok(Value::String(u.to_string()));
    }
    if let Some(t) = datetime_of(obj, field)? {
        return Ok(Value::String(rfc3339(t)));
    }
    let ty = obj.get_type().name()?;
    Err(invalid(
        field,
        format!("cannot hold a value of type {ty} (only JSON-like values)"),
    ))
}

/// JSON as Python values (`dict`, `list`, `str`, `int`, `float`, `bool`, `None`).
pub(crate) fn json_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any()
            } else if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any()
            } else {
                n.as_f64().unwrap_or(f64::NAN).into_pyobject(py)?.into_any()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for v in items {
                list.append(json_to_py(py, v)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map {
                dict.set_item(k, json_to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// A JSON object (metadata) from a Python dict; `None` gives an empty object.
pub(crate) fn metadata(
    obj: Option<&Bound<'_, PyAny>>,
    field: &str,
) -> PyResult<Map<String, Value>> {
    match obj {
        None => Ok(Map::new()),
        Some(o) if o.is_none() => Ok(Map::new()),
        Some(o) => match py_to_json(o, field)? {
            Value::Object(m) => Ok(m),
            _ => Err(invalid(field, "must be a dict")),
        },
    }
}

/// A UUID from a `uuid.UUID` or its string form.
pub(crate) fn uuid(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Uuid> {
    if let Ok(u) = obj.extract::<Uuid>() {
        return Ok(u);
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Uuid::parse_str(s.to_cow()?.trim())
            .map_err(|e| invalid(field, format!("is not a UUID: {e}")));
    }
    Err(invalid(field, "must be a uuid.UUID or a UUID string"))
}

/// An optional UUID; Python `None` (or an absent argument) gives `None`.
pub(crate) fn opt_uuid(obj: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Option<Uuid>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => uuid(o, field).map(Some),
    }
}

/// A time from an aware `datetime` (any offset, converted to UTC) or an RFC 3339 string
/// (the offset is converted, never dropped). `Ok(None)` when `obj` is neither.
fn datetime_of(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<Option<DateTime<Utc>>> {
    let py = obj.py();
    let datetime_type = py.import("datetime")?.getattr("datetime")?;
    if obj.is_instance(&datetime_type)? {
        if obj.getattr("tzinfo")?.is_none() || obj.call_method0("utcoffset")?.is_none() {
            return Err(invalid(
                field,
                "must be a timezone-aware datetime (a naive one does not say which time it means)",
            ));
        }
        let utc = py.import("datetime")?.getattr("timezone")?.getattr("utc")?;
        let converted = obj.call_method1("astimezone", (utc,))?;
        return Ok(Some(converted.extract::<DateTime<Utc>>()?));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let s = s.to_cow()?;
        return DateTime::parse_from_rfc3339(s.trim())
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| invalid(field, format!("is not an RFC 3339 time ({s:?}): {e}")));
    }
    Ok(None)
}

/// A required time; see [`datetime_of`]. Integers are Unix seconds.
pub(crate) fn datetime(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<DateTime<Utc>> {
    if let Some(t) = datetime_of(obj, field)? {
        return Ok(t);
    }
    if obj.is_instance_of::<PyInt>() && !obj.is_instance_of::<PyBool>() {
        let secs: i64 = obj
            .extract()
            .map_err(|_| invalid(field, "is outside the range of Unix times"))?;
        return DateTime::from_timestamp(secs, 0)
            .ok_or_else(|| invalid(field, "is outside the range of Unix times"));
    }
    Err(invalid(
        field,
        "must be a timezone-aware datetime, an RFC 3339 string or Unix seconds",
    ))
}

/// An optional time; Python `None` gives `None`.
pub(crate) fn opt_datetime(
    obj: Option<&Bound<'_, PyAny>>,
    field: &str,
) -> PyResult<Option<DateTime<Utc>>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => datetime(o, field).map(Some),
    }
}

/// A non-negative integer that fits 64 bits.
pub(crate) fn u64_of(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<u64> {
    if obj.is_instance_of::<PyBool>() || !obj.is_instance_of::<PyInt>() {
        // A GUID reported as a decimal string (JSON cannot hold every u64 exactly).
        if let Ok(s) = obj.cast::<PyString>() {
            return s
                .to_cow()?
                .trim()
                .parse::<u64>()
                .map_err(|_| invalid(field, "must be a non-negative integer below 2**64"));
        }
        return Err(invalid(field, "must be a non-negative integer below 2**64"));
    }
    obj.extract::<u64>()
        .map_err(|_| invalid(field, "must be a non-negative integer below 2**64"))
}

/// An optional [`u64_of`].
pub(crate) fn opt_u64(obj: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Option<u64>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => u64_of(o, field).map(Some),
    }
}

/// A string.
pub(crate) fn string(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<String> {
    obj.cast::<PyString>()
        .map_err(|_| invalid(field, "must be a string"))
        .and_then(|s| Ok(s.to_cow()?.to_string()))
}

/// An optional string; Python `None` gives `None`.
pub(crate) fn opt_string(obj: Option<&Bound<'_, PyAny>>, field: &str) -> PyResult<Option<String>> {
    match obj {
        None => Ok(None),
        Some(o) if o.is_none() => Ok(None),
        Some(o) => string(o, field).map(Some),
    }
}

/// A `bool` (not merely truthy: `"false"` is a mistake, not `True`).
pub(crate) fn boolean(obj: &Bound<'_, PyAny>, field: &str) -> PyResult<bool> {
    if obj.is_instance_of::<PyBool>() {
        obj.extract()
    } else {
        Err(invalid(field, "must be True or False"))
    }
}

/// UTC time as the API writes it: RFC 3339 with `Z`.
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Checks that a dict handed to `from_dict` names only known fields.
pub(crate) fn check_keys(d: &Bound<'_, PyDict>, known: &[&str], class: &str) -> PyResult<()> {
    for k in d.keys() {
        let key = k
            .cast::<PyString>()
            .map_err(|_| invalid(class, "dict keys must be strings"))?;
        let key = key.to_cow()?;
        if !known.contains(&key.as_ref()) {
            return Err(invalid(
                key,
                format!(
                    "is not a field of {class}; expected one of {}",
                    known.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The current time, for defaults (`created_at`, `now`).
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now()
}
