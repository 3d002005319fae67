"""The one place where the embedder's ONNX bytes are handed to onnxruntime.

Callers pass bytes that already matched the signed statement (or, in the
compiler, the pinned SHA-256 of the packaged model).  Any structural check of
ONNX bytes the runtime adopts (external data, operator allow-list, size
limits) belongs here, before ``InferenceSession`` is called.
"""

from __future__ import annotations

from tracec_runtime.errors import ModelContractError

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "last_hidden_state"


def embedder_session(model: bytes, where: str):
    """An onnxruntime session (one thread, CPU) over ``model``; contract checked."""
    import onnxruntime  # deferred: importing tracec_runtime stays cheap

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.load_model_format", "ONNX")
    try:
        session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own, unrelated exception types
        raise ModelContractError(f"{where}: onnxruntime {onnxruntime.__version__} cannot load "
                                 f"the embedder graph: {exc}") from None
    inputs = {i.name: i for i in session.get_inputs()}
    names = [n for n in INPUTS if n in inputs]
    if "input_ids" not in inputs or set(inputs) - set(INPUTS):
        raise ModelContractError(f"{where}: the embedder graph must take input_ids (and "
                                 f"optionally attention_mask, token_type_ids) as int64 "
                                 f"[batch, sequence]; found {sorted(inputs)}")
    for name in names:
        if inputs[name].type != "tensor(int64)" or len(inputs[name].shape) != 2:
            raise ModelContractError(f"{where}: embedder input {name!r} must be int64 "
                                     f"[batch, sequence]; found {inputs[name].type} "
                                     f"{inputs[name].shape}")
    outputs = [o for o in session.get_outputs() if o.name == OUTPUT]
    if not outputs or outputs[0].type != "tensor(float)" or len(outputs[0].shape) != 3:
        raise ModelContractError(f"{where}: the embedder graph must output {OUTPUT!r} float32 "
                                 f"[batch, sequence, dimension]; found "
                                 f"{[(o.name, o.type, o.shape) for o in session.get_outputs()]}")
    return session, tuple(names)
