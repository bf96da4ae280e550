//! Structs that Rust writes and WGSL reads (a kernel's uniform `Params`, the optimisers'
//! `Schedule`) are declared twice, once in each language. `shader_struct!` declares the Rust
//! side with its layout (`StructLayout`: size and field offsets from `offset_of!`), each `Shader`
//! pairs its WGSL structs with those layouts, and `check_structs` compares them with naga's layout
//! of the WGSL declarations: the size, and every field's name and offset in order.

use super::Shader;

/// A Rust struct's size and its fields' names and byte offsets, in declaration order.
#[derive(Clone, Copy, Debug)]
pub struct StructLayout {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [(&'static str, usize)],
}

/// A `#[repr(C)]` Pod struct that a shader reads, with its `LAYOUT`:
/// `shader_struct! { struct Params { n: u32, scale: f32 } }`.
macro_rules! shader_struct {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $($(#[$field_attr:meta])* $field_vis:vis $field:ident: $ty:ty),* $(,)?
        }
    ) => {
        $(#[$attr])*
        #[repr(C)]
        #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
        $vis struct $name {
            $($(#[$field_attr])* $field_vis $field: $ty),*
        }

        impl $name {
            /// Size and field offsets, compared with the WGSL struct by `gpu::check_structs`.
            pub(crate) const LAYOUT: $crate::gpu::StructLayout = $crate::gpu::StructLayout {
                name: stringify!($name),
                size: ::core::mem::size_of::<$name>(),
                fields: &[$((stringify!($field), ::core::mem::offset_of!($name, $field))),*],
            };
        }
    };
}
pub(crate) use shader_struct;

/// Compares each struct of `shader.structs` with naga's layout of the WGSL struct it names, and
/// checks that every struct the shader binds whole (a uniform, or a storage variable of struct
/// type) is among them. Returns every difference found.
pub fn check_structs(shader: &Shader) -> Result<(), String> {
    let source = shader.source()?;
    let module = naga::front::wgsl::parse_str(&source).map_err(|e| e.emit_to_string(&source))?;
    let mut problems: Vec<String> = shader
        .structs
        .iter()
        .filter_map(|(wgsl, layout)| compare_struct(&module, wgsl, layout).err())
        .collect();
    for (_, global) in module.global_variables.iter() {
        let bound_by_host = matches!(
            global.space,
            naga::AddressSpace::Uniform | naga::AddressSpace::Storage { .. }
        );
        let ty = &module.types[global.ty];
        if !bound_by_host || !matches!(ty.inner, naga::TypeInner::Struct { .. }) {
            continue;
        }
        let name = ty.name.as_deref().unwrap_or("(unnamed)");
        if !shader.structs.iter().any(|(wgsl, _)| *wgsl == name) {
            problems.push(format!(
                "`{}` binds struct {name}, which the shader pairs with no Rust struct",
                global.name.as_deref().unwrap_or("(unnamed)")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The differences between the struct `wgsl_name` of `module`, as naga lays it out, and
/// `layout`: size, field count, and each field's name and offset in order.
pub fn compare_struct(
    module: &naga::Module,
    wgsl_name: &str,
    layout: &StructLayout,
) -> Result<(), String> {
    let what = format!("WGSL struct {wgsl_name} and Rust struct {}", layout.name);
    let ty = module
        .types
        .iter()
        .map(|(_, ty)| ty)
        .find(|ty| ty.name.as_deref() == Some(wgsl_name))
        .ok_or_else(|| format!("{what}: the shader declares no struct {wgsl_name}"))?;
    let naga::TypeInner::Struct { members, span } = &ty.inner else {
        return Err(format!("{what}: {wgsl_name} is not a struct"));
    };
    let mut problems = Vec::new();
    if *span as usize != layout.size {
        problems.push(format!("{span} bytes in WGSL, {} in Rust", layout.size));
    }
    if members.len() != layout.fields.len() {
        problems.push(format!(
            "{} fields in WGSL, {} in Rust",
            members.len(),
            layout.fields.len()
        ));
    }
    for (i, (member, &(name, offset))) in members.iter().zip(layout.fields).enumerate() {
        let wgsl_field = member.name.as_deref().unwrap_or("(unnamed)");
        if wgsl_field != name || member.offset as usize != offset {
            problems.push(format!(
                "field {i} is `{wgsl_field}` at byte {} in WGSL, `{name}` at byte {offset} in Rust",
                member.offset
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{what} differ: {}", problems.join("; ")))
    }
}
