//! Host bindings of the WIT worlds (`wit/plugin.wit`), one module per world.

/// The key-order world.
pub mod order {
    wasmtime::component::bindgen!({
        world: "key-order-plugin",
        path: "../../guest-sdk/wit",
        imports: { default: trappable },
    });
}

/// The validator world.
pub mod validator {
    wasmtime::component::bindgen!({
        world: "validator-plugin",
        path: "../../guest-sdk/wit",
        imports: { default: trappable },
    });
}

/// The compute world (imports the host's storage).
pub mod compute {
    wasmtime::component::bindgen!({
        world: "compute-plugin",
        path: "../../guest-sdk/wit",
        imports: { default: trappable },
        with: {
            "sop:plugin/storage.store": crate::compute::StoreHandle,
            "sop:plugin/storage.cursor": crate::compute::CursorState,
        },
    });
}
