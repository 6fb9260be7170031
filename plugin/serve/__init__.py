"""Local serving: tritonserver (nvidia-pytriton's, serving env) and Milvus Lite as
child processes that never outlive their owner. See stack.local_stack and
stack.encoder_for for the entry points commands use."""

from .milvus import MilvusServer
from .stack import Stack, encoder_for, ensure_repository, local_stack, start_triton
from .triton import TritonServer

__all__ = ["MilvusServer", "Stack", "TritonServer", "encoder_for", "ensure_repository", "local_stack", "start_triton"]
