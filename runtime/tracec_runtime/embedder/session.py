"""The one place where the embedder's ONNX bytes are handed to onnxruntime.

Callers pass bytes that already matched the signed statement (or, in the
compiler, the pinned SHA-256 of the packaged model).  Any structural check of
ONNX bytes the runtime adopts (external data, operator allow-list, size
limits) belongs here, before ``InferenceSession`` is called.
"""

from __future__ import annotations

from tracec_runtime.embedder.memory import fix_mmap_threshold
from tracec_runtime.errors import ModelContractError
from tracec_runtime.onnx_check import check_onnx_bytes

INPUTS = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT = "last_hidden_state"
DISABLE_QDQ = "session.disable_quant_qdq"

#: Operators a BERT-style sentence encoder (fp32 or int8-quantised) is built from: the packaged
#: all-MiniLM-L6-v2 int8 graph uses a subset; anything else is refused before onnxruntime sees it.
EMBEDDER_OPS = frozenset(("", op) for op in (
    "Add", "And", "Cast", "Concat", "ConstantOfShape", "Div", "Equal", "Erf", "Expand", "Gather",
    "GatherND", "Gemm", "GreaterOrEqual", "Identity", "IsNaN", "LayerNormalization", "MatMul",
    "Max", "Mul", "Not", "Pow", "Range", "ReduceMean", "Reshape", "Shape", "Slice", "Softmax",
    "Sqrt", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze", "Where",
    "DequantizeLinear", "QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
    "ConvInteger", "QLinearMatMul")) | frozenset(("com.microsoft", op) for op in (
        "Attention", "BiasGelu", "DynamicQuantizeMatMul", "EmbedLayerNormalization",
        "FastGelu", "Gelu", "MatMulIntegerToFloat", "SkipLayerNormalization"))


def embedder_session(model: bytes, where: str):
    """An onnxruntime session (one thread, CPU) over ``model``; contract checked."""
    import onnxruntime  # deferred: importing tracec_runtime stays cheap

    check_onnx_bytes(model, where, EMBEDDER_OPS)  # external data, structure, operators: first
    fix_mmap_threshold()  # folding the weights: temporary blocks returned, not kept (memory.py)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.load_model_format", "ONNX")
    # The compiler writes weights as DequantizeLinear (tracec/minilm_graph.py) so constant
    # folding builds them in one step; the QDQ fusions would replace them with MatMulNBits
    # quantising the activations: other numbers than the compiler certified on.
    options.add_session_config_entry(DISABLE_QDQ, "1")
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
