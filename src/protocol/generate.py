#!/usr/bin/env python3
"""Generates the Rust codecs in src/protocol/messages/ from Kafka's JSON message specs.

The specs come from the kafka-python 3.0.x wheel on PyPI (it ships Kafka 4.x's specs in
kafka/protocol/schemas/resources/), fetched with pip unless --specs names a directory, plus
the specs in src/protocol/specs/ that Klamm writes itself from the KIPs. Specs in our own
folder replace the wheel's of the same name.

    python3 src/protocol/generate.py            # regenerate
    python3 src/protocol/generate.py --check    # fail if the committed code differs

The generated code carries names, types and versions, not the specs' prose.
"""
import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "messages"
OWN_SPECS = HERE / "specs"
WHEEL = "kafka-python>=3.0,<3.1"
WHEEL_SPECS = "kafka/protocol/schemas/resources/"
VERSION_MAX = 32767

PRIMITIVES = {
    "int8": "i8", "int16": "i16", "uint16": "u16", "int32": "i32", "uint32": "u32",
    "int64": "i64", "float64": "f64", "bool": "bool", "uuid": "Uuid",
    "string": "String", "bytes": "Bytes", "records": "Bytes",
}
READ = {"int8": "read_i8", "int16": "read_i16", "uint16": "read_u16", "int32": "read_i32", "uint32": "read_u32",
        "int64": "read_i64", "float64": "read_f64", "bool": "read_bool", "uuid": "read_uuid"}
PUT = {"int8": "put_i8", "int16": "put_i16", "uint16": "put_u16", "int32": "put_i32", "uint32": "put_u32",
       "int64": "put_i64", "float64": "put_f64", "bool": "put_u8"}
RUST_KEYWORDS = {"type", "match", "ref", "self", "mod", "use", "loop", "move", "where", "async", "await", "fn", "in"}


def snake(name):
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()
    return s + "_" if s in RUST_KEYWORDS else s


class Versions:
    def __init__(self, text):
        text = (text or "none").strip()
        if text == "none":
            self.lo, self.hi = None, None
        elif text.endswith("+"):
            self.lo, self.hi = int(text[:-1]), VERSION_MAX
        elif "-" in text:
            lo, hi = text.split("-")
            self.lo, self.hi = int(lo), int(hi)
        else:
            self.lo = self.hi = int(text)

    def empty(self):
        return self.lo is None

    def intersect(self, other):
        v = Versions("none")
        if self.empty() or other.empty():
            return v
        lo, hi = max(self.lo, other.lo), min(self.hi, other.hi)
        if lo <= hi:
            v.lo, v.hi = lo, hi
        return v

    def cond(self, valid):
        """A Rust condition on `version`, simplified against the message's valid range."""
        v = self.intersect(valid)
        if v.empty():
            return "false"
        parts = []
        if v.lo > valid.lo:
            parts.append(f"version >= {v.lo}")
        if v.hi < valid.hi:
            parts.append(f"version <= {v.hi}")
        return " && ".join(parts) if parts else "true"


def load(path):
    text = "\n".join(line for line in path.read_text().splitlines() if not line.strip().startswith("//"))
    return json.loads(text)


class Type:
    def __init__(self, text):
        self.array = text.startswith("[]")
        self.name = text[2:] if self.array else text
        self.primitive = self.name in PRIMITIVES

    def rust_elem(self):
        return PRIMITIVES[self.name] if self.primitive else self.name


class Field:
    def __init__(self, spec, valid):
        self.name = spec["name"]
        self.rust = snake(self.name)
        self.type = Type(spec["type"])
        self.versions = Versions(spec.get("versions"))
        self.nullable = Versions(spec.get("nullableVersions"))
        self.tagged = Versions(spec.get("taggedVersions")) if "tag" in spec else Versions("none")
        self.tag = spec.get("tag")
        self.default = spec.get("default")
        self.ignorable = spec.get("ignorable", False) or self.tag is not None
        self.map_key = spec.get("mapKey", False)
        self.flexible_override = Versions(spec["flexibleVersions"]) if "flexibleVersions" in spec else None
        self.fields = spec.get("fields")
        self.valid = valid
        if self.type.name == "records":
            self.nullable = self.versions if self.nullable.empty() else self.nullable

    def is_option(self):
        return not self.nullable.empty()

    def rust_type(self):
        inner = f"Vec<{self.type.rust_elem()}>" if self.type.array else self.type.rust_elem()
        return f"Option<{inner}>" if self.is_option() else inner

    def default_expr(self):
        d = self.default if self.default is None else str(self.default)
        t = self.type
        if self.is_option():
            if d == "null" or t.name == "records" or (not t.array and not t.primitive):
                return "None"
            return f"Some({self.plain_default(d)})"
        return self.plain_default(d)

    def plain_default_checked(self, d):
        return self.plain_default(None if d is None else str(d))

    def plain_default(self, d):
        t = self.type
        if t.array:
            return f"Vec::<{t.rust_elem()}>::new()"
        if not t.primitive:
            return f"{t.name}::default()"
        n = t.name
        if n in ("int8", "int16", "uint16", "int32", "uint32", "int64"):
            if d in (None, ""):
                return "0"
            value = int(d, 16) if d.lower().startswith("0x") else int(d)
            return str(value)
        if n == "float64":
            return f"{float(d)}f64" if d not in (None, "") else "0.0f64"
        if n == "bool":
            return "true" if d == "true" else "false"
        if n == "string":
            return "String::new()" if d in (None, "", "null") else f"String::from({json.dumps(d)})"
        if n in ("bytes", "records"):
            return "Bytes::new()"
        if n == "uuid":
            return "Uuid::default()"
        raise ValueError(n)


class Struct:
    def __init__(self, name, fields, valid):
        self.name = name
        self.fields = [Field(f, valid) for f in fields]


def collect_structs(spec, valid):
    structs = []

    def walk(name, fields):
        s = Struct(name, fields, valid)
        structs.append(s)
        for f in fields:
            if "fields" in f:
                walk(Type(f["type"]).name, f["fields"])

    for common in spec.get("commonStructs", []):
        walk(common["name"], common["fields"])
    walk(spec["name"], spec.get("fields", []))
    return structs


class Gen:
    def __init__(self, spec):
        self.spec = spec
        self.valid = Versions(spec["validVersions"])
        self.flexible = Versions(spec.get("flexibleVersions", "none"))
        self.structs = collect_structs(spec, self.valid)
        self.lines = []

    def out(self, line=""):
        self.lines.append(line)

    def compact(self, f):
        flex = f"flexible"
        if f.flexible_override is not None:
            c = f.flexible_override.cond(self.valid)
            if c == "false":
                return "false"
            if c != "true":
                flex = f"(flexible && {c})"
        return flex

    # ---- encoding ----
    def encode_value(self, f, expr, compact, ind):
        """Lines that write `expr` (a reference to the field's value, Option-free)."""
        t = f.type
        pad = "    " * ind
        if t.array:
            lines = [f"{pad}codec::write_array_len(w, Some(({expr}).len()), {compact})?;",
                     f"{pad}for e in ({expr}).iter() {{"]
            lines += self.encode_elem(t, "e", compact, ind + 1)
            lines.append(f"{pad}}}")
            return lines
        return self.encode_elem(t, expr, compact, ind)

    def encode_elem(self, t, expr, compact, ind):
        pad = "    " * ind
        n = t.name
        if not t.primitive:
            return [f"{pad}({expr}).encode(w, version)?;"]
        if n == "bool":
            return [f"{pad}w.put_u8(*{expr} as u8);"]
        if n in PUT:
            return [f"{pad}w.{PUT[n]}(*{expr});"]
        if n == "uuid":
            return [f"{pad}codec::write_uuid(w, {expr});"]
        if n == "string":
            return [f"{pad}codec::write_string(w, {expr}, {compact})?;"]
        if n == "records":
            return [f"{pad}codec::write_records(w, Some({expr}), {compact})?;"]
        return [f"{pad}codec::write_bytes(w, {expr}, {compact})?;"]

    def encode_field(self, s, f, ind, compact):
        """Lines writing field f (present in this version) of `self`."""
        pad = "    " * ind
        label = f"{s.name}.{f.rust}"
        if not f.is_option():
            return self.encode_value(f, f"&self.{f.rust}", compact, ind)
        t = f.type
        null_ok = f.nullable.cond(self.valid)
        lines = [f"{pad}match &self.{f.rust} {{"]
        lines.append(f"{pad}    None if {null_ok} => {{")
        if t.array:
            lines.append(f"{pad}        codec::write_array_len(w, None, {compact})?;")
        elif not t.primitive:
            lines.append(f"{pad}        w.put_i8(-1);")
        elif t.name == "string":
            lines.append(f"{pad}        codec::write_nullable_string(w, None, {compact})?;")
        elif t.name == "records":
            lines.append(f"{pad}        codec::write_records(w, None, {compact})?;")
        else:
            lines.append(f"{pad}        codec::write_nullable_bytes(w, None, {compact})?;")
        lines.append(f"{pad}    }}")
        lines.append(f"{pad}    None => return Err(EncodeError::NullNotAllowed {{ field: \"{label}\", version }}),")
        lines.append(f"{pad}    Some(v) => {{")
        if not t.array and not t.primitive:
            lines.append(f"{pad}        w.put_i8(1);")
        lines += self.encode_value(f, "v", compact, ind + 2)
        lines.append(f"{pad}    }}")
        lines.append(f"{pad}}}")
        return lines

    # ---- decoding ----
    def decode_elem(self, t, compact, label):
        n = t.name
        if not t.primitive:
            return f"{n}::decode(r, version)?"
        if n in READ:
            return f"r.{READ[n]}()?"
        if n == "string":
            return f"r.read_string({compact}, \"{label}\")?"
        return f"r.read_bytes({compact}, \"{label}\")?"

    def decode_value(self, f, compact, nullable_cond):
        """A Rust expression decoding field f from `r`."""
        t = f.type
        label = f.rust
        if t.array:
            elem = self.decode_elem(Type(t.name), compact, label)
            closure = f"|r, _| Ok({elem})"
            if f.is_option():
                return f"if {nullable_cond} {{ r.read_nullable_array({compact}, {closure})? }} else {{ Some(r.read_array({compact}, \"{label}\", {closure})?) }}"
            return f"r.read_array({compact}, \"{label}\", {closure})?"
        if not f.is_option():
            return self.decode_elem(t, compact, label)
        if not t.primitive:
            return (f"if {nullable_cond} && r.read_i8()? < 0 {{ None }} else {{ "
                    f"{'' if nullable_cond == 'true' else ''}Some({t.name}::decode(r, version)?) }}")
        if t.name == "string":
            return f"if {nullable_cond} {{ r.read_nullable_string({compact})? }} else {{ Some(r.read_string({compact}, \"{label}\")?) }}"
        return f"if {nullable_cond} {{ r.read_nullable_bytes({compact})? }} else {{ Some(r.read_bytes({compact}, \"{label}\")?) }}"

    def gen_struct(self, s, top):
        valid = self.valid
        flex_cond = self.flexible.cond(valid)
        self.out("#[derive(Clone, Debug, PartialEq)]")
        self.out(f"pub struct {s.name} {{")
        for f in s.fields:
            self.out(f"    pub {f.rust}: {f.rust_type()},")
        self.out("    pub unknown_tagged_fields: Vec<TaggedField>,")
        self.out("}")
        self.out()
        self.out(f"impl Default for {s.name} {{")
        self.out("    fn default() -> Self {")
        self.out("        Self {")
        for f in s.fields:
            self.out(f"            {f.rust}: {f.default_expr()},")
        self.out("            unknown_tagged_fields: Vec::new(),")
        self.out("        }")
        self.out("    }")
        self.out("}")
        self.out()
        # encode
        self.out(f"impl {s.name} {{")
        self.out("    pub fn encode(&self, w: &mut BytesMut, version: i16) -> Result<(), EncodeError> {")
        self.out(f"        let flexible = {flex_cond};")
        tagged = []
        for f in s.fields:
            present = f.versions.cond(valid)
            if not f.tagged.empty():
                tagged.append(f)
                continue
            compact = self.compact(f)
            if present == "false":
                continue
            if present == "true":
                for line in self.encode_field(s, f, 2, compact):
                    self.out(line)
            else:
                self.out(f"        if {present} {{")
                for line in self.encode_field(s, f, 3, compact):
                    self.out(line)
                self.out("        }")
                if not f.ignorable:
                    self.out(f"        else if self.{f.rust} != {f.default_expr()} {{")
                    self.out(f"            return Err(EncodeError::FieldNotInVersion {{ field: \"{s.name}.{f.rust}\", version }});")
                    self.out("        }")
        self.out("        if flexible {")
        self.out("            #[allow(unused_mut)]")
        self.out("            let mut known = Vec::new();")
        for f in tagged:
            present = f.tagged.intersect(f.versions).cond(valid)
            self.out(f"            if {present} && self.{f.rust} != {f.default_expr()} {{")
            self.out("                let mut tw = BytesMut::new();")
            self.out("                {")
            self.out("                    let w = &mut tw;")
            for line in self.encode_field(s, f, 5, "true"):
                self.out(line)
            self.out("                }")
            self.out(f"                known.push(TaggedField {{ tag: {f.tag}, data: tw.freeze() }});")
            self.out("            }")
        self.out("            codec::write_tagged_fields(w, known, &self.unknown_tagged_fields)?;")
        self.out("        }")
        self.out("        Ok(())")
        self.out("    }")
        self.out()
        # decode
        self.out("    pub fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {")
        self.out(f"        let flexible = {flex_cond};")
        self.out("        let mut this = Self::default();")
        for f in s.fields:
            if not f.tagged.empty():
                continue
            present = f.versions.cond(valid)
            if present == "false":
                continue
            expr = self.decode_value(f, self.compact(f), f.nullable.cond(valid))
            if present == "true":
                self.out(f"        this.{f.rust} = {expr};")
            else:
                self.out(f"        if {present} {{")
                self.out(f"            this.{f.rust} = {expr};")
                self.out("        }")
        self.out("        if flexible {")
        self.out("            for field in r.read_tagged_fields()? {")
        self.out("                match field.tag {")
        for f in tagged:
            present = f.tagged.intersect(f.versions).cond(valid)
            self.out(f"                    {f.tag} if {present} => {{")
            self.out("                        let r = &mut Reader::new(field.data);")
            self.out(f"                        this.{f.rust} = {self.decode_value(f, 'true', f.nullable.cond(valid))};")
            self.out("                    }")
        self.out("                    _ => this.unknown_tagged_fields.push(field),")
        self.out("                }")
        self.out("            }")
        self.out("        }")
        self.out("        let _ = flexible;")
        self.out("        Ok(this)")
        self.out("    }")
        self.out("}")
        self.out()
        self.gen_random(s)

    # ---- random values for tests ----
    def random_elem(self, t, f):
        n = t.name
        if not t.primitive:
            return f"{n}::random(rng, version, i)"
        if f.map_key and n in ("int8", "int16", "uint16", "int32", "uint32", "int64"):
            return f"index as {PRIMITIVES[n]}"
        if f.map_key and n == "string":
            return "format!(\"key-{index}\")"
        if n == "bool":
            return "rng.chance(0.5)"
        if n == "float64":
            return "(rng.below(1000) as f64) / 8.0"
        if n in PRIMITIVES and n not in ("string", "bytes", "records", "uuid"):
            return f"rng.next_u64() as {PRIMITIVES[n]}"
        if n == "uuid":
            return "random_uuid(rng)"
        if n == "string":
            return "random_string(rng)"
        return "random_bytes(rng)"

    def gen_random(self, s):
        valid = self.valid
        self.out("#[cfg(test)]")
        self.out(f"impl {s.name} {{")
        self.out("    #[allow(unused_variables)]")
        self.out("    pub fn random(rng: &mut SimRng, version: i16, index: usize) -> Self {")
        self.out("        #[allow(unused_mut)]")
        self.out("        let mut this = Self::default();")
        for f in s.fields:
            present = f.versions.cond(valid)
            if not f.tagged.empty():
                present = f.tagged.intersect(f.versions).cond(valid)
            if present == "false":
                continue
            t = f.type
            if t.array:
                elem = self.random_elem(Type(t.name), f)
                value = f"(0..rng.below(3) as usize).map(|i| {{ let _ = i; {elem} }}).collect::<Vec<_>>()"
            else:
                value = self.random_elem(t, f).replace(", i)", ", 0)")
            self.out(f"        if {present} {{")
            if f.is_option():
                self.out(f"            this.{f.rust} = if {f.nullable.cond(valid)} && rng.chance(0.2) {{ None }} else {{ Some({value}) }};")
            else:
                self.out(f"            this.{f.rust} = {value};")
            self.out("        }")
        self.out("        this")
        self.out("    }")
        self.out("}")
        self.out()

    def generate(self):
        spec = self.spec
        name = spec["name"]
        self.out(f"//! {name}: generated by src/protocol/generate.py from Kafka's message spec. Do not edit.")
        self.out("#![allow(clippy::all, unused_comparisons, unused_parens, unused_variables)]")
        self.out()
        self.out("#[allow(unused_imports)]")
        self.out("use bytes::{BufMut, Bytes, BytesMut};")
        self.out()
        self.out("#[allow(unused_imports)]")
        self.out("use crate::protocol::codec::{self, DecodeError, EncodeError, Message, Reader, TaggedField, Uuid};")
        self.out("#[cfg(test)]")
        self.out("#[allow(unused_imports)]")
        self.out("use crate::protocol::random::{random_bytes, random_string, random_uuid};")
        self.out("#[cfg(test)]")
        self.out("use crate::io::SimRng;")
        self.out()
        for s in reversed(self.structs):
            self.gen_struct(s, s.name == name)
        flex_min = self.flexible.lo if not self.flexible.empty() else VERSION_MAX
        self.out(f"impl Message for {name} {{")
        self.out(f"    const API_KEY: i16 = {spec.get('apiKey', -1)};")
        self.out(f"    const NAME: &'static str = \"{name}\";")
        self.out(f"    const VERSION_MIN: i16 = {self.valid.lo};")
        self.out(f"    const VERSION_MAX: i16 = {self.valid.hi};")
        self.out(f"    const FLEXIBLE_MIN: i16 = {flex_min};")
        self.out("    fn encode(&self, w: &mut BytesMut, version: i16) -> Result<(), EncodeError> {")
        self.out(f"        {name}::encode(self, w, version)")
        self.out("    }")
        self.out("    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError> {")
        self.out(f"        {name}::decode(r, version)")
        self.out("    }")
        self.out("    #[cfg(test)]")
        self.out("    fn random(rng: &mut SimRng, version: i16) -> Self {")
        self.out(f"        {name}::random(rng, version, 0)")
        self.out("    }")
        self.out("}")
        return "\n".join(self.lines) + "\n"


def fetch_wheel_specs(tmp):
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", tmp, WHEEL], check=True)
    wheels = list(pathlib.Path(tmp).glob("kafka_python-*.whl"))
    if not wheels:
        sys.exit("pip did not fetch the kafka-python wheel")
    out = pathlib.Path(tmp) / "specs"
    out.mkdir()
    with zipfile.ZipFile(wheels[0]) as z:
        for member in z.namelist():
            if member.startswith(WHEEL_SPECS) and member.endswith(".json"):
                (out / pathlib.Path(member).name).write_bytes(z.read(member))
    return out


def render(spec_dir):
    files = {p.name: p for p in sorted(spec_dir.glob("*.json"))}
    files.update({p.name: p for p in sorted(OWN_SPECS.glob("*.json"))})
    outputs = {}
    apis = {}
    modules = []
    for fname in sorted(files):
        spec = load(files[fname])
        if spec.get("type") not in ("request", "response", "header", "data"):
            continue
        module = snake(spec["name"])
        outputs[module + ".rs"] = Gen(spec).generate()
        modules.append((module, spec["name"]))
        if spec.get("type") in ("request", "response"):
            api = apis.setdefault(spec["apiKey"], {})
            api[spec["type"]] = spec
    lines = ["//! The message codecs, generated by src/protocol/generate.py from Kafka's message specs.",
             "//! Do not edit; regenerate.", ""]
    for module, _ in modules:
        lines.append(f"pub mod {module};")
    lines.append("")
    for module, name in modules:
        lines.append(f"pub use {module}::{name};")
    lines.append("")
    lines.append("/// Every API the specs define: (key, name, request versions, first flexible request version).")
    lines.append("pub const APIS: &[(i16, &str, i16, i16, i16)] = &[")
    for key in sorted(apis):
        req = apis[key].get("request")
        if req is None:
            continue
        v = Versions(req["validVersions"])
        flex = Versions(req.get("flexibleVersions", "none"))
        name = req["name"][: -len("Request")]
        lines.append(f"    ({key}, \"{name}\", {v.lo}, {v.hi}, {flex.lo if not flex.empty() else VERSION_MAX}),")
    lines.append("];")
    lines.append("")
    lines.append("/// Calls `$callback!` with the type of every generated message, for tests and fuzz targets")
    lines.append("/// over all of them.")
    lines.append("macro_rules! with_all_messages {")
    lines.append("    ($callback:ident) => {")
    lines.append("        $callback! {")
    for _, name in modules:
        lines.append(f"            {name},")
    lines.append("        }")
    lines.append("    };")
    lines.append("}")
    lines.append("pub(crate) use with_all_messages;")
    outputs["mod.rs"] = "\n".join(lines) + "\n"
    return outputs


def rustfmt(outputs):
    """Formats the generated files with the toolchain's rustfmt, if it has one."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, text in outputs.items():
            p = pathlib.Path(tmp) / name
            p.write_text(text)
            paths.append(str(p))
        try:
            subprocess.run(["rustfmt", "--edition", "2021", "--config", "max_width=120", *paths], check=True)
        except (FileNotFoundError, subprocess.CalledProcessError) as e:
            sys.exit(f"rustfmt failed: {e}")
        return {name: (pathlib.Path(tmp) / name).read_text() for name in outputs}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specs", type=pathlib.Path, help="a directory of Kafka's JSON specs (default: fetch the wheel)")
    parser.add_argument("--check", action="store_true", help="fail if the committed code differs from the output")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec_dir = args.specs or fetch_wheel_specs(tmp)
        outputs = rustfmt(render(spec_dir))
    if args.check:
        stale = [n for n, text in outputs.items() if not (OUT / n).exists() or (OUT / n).read_text() != text]
        extra = [p.name for p in OUT.glob("*.rs") if p.name not in outputs]
        if stale or extra:
            sys.exit(f"generated code is stale: {sorted(stale + extra)}; run python3 src/protocol/generate.py")
        print(f"generated code matches the specs ({len(outputs)} files)")
        return
    OUT.mkdir(exist_ok=True)
    for p in OUT.glob("*.rs"):
        if p.name not in outputs:
            p.unlink()
    for name, text in outputs.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(outputs)} files to {OUT}")


if __name__ == "__main__":
    main()
