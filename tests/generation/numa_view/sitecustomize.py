"""Test-only: show vLLM a smaller NUMA node 0 than the machine has, as a machine that has just
started does (node 0 held 10.6 of 23.5 GiB, 8.44 GiB available). Loaded through PYTHONPATH by
tests/generation/test_vllm_memory.py, in the CLI process and in every engine process vLLM spawns;
REASONLITE_TEST_NUMA_GIB="total,available" sets the view."""

import importlib.abc
import os
import sys

_TARGET = "vllm.utils.cpu_resource_utils"
_VIEW = os.environ.get("REASONLITE_TEST_NUMA_GIB")


class _SmallerNode(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != _TARGET:
            return None
        spec = next((s for f in sys.meta_path if f is not self and hasattr(f, "find_spec")
                     for s in [f.find_spec(name, path, target)] if s is not None), None)
        if spec is None:
            return None
        total, available = (int(float(x) * (1 << 30)) for x in _VIEW.split(","))
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            info = module.MemoryNodeInfo
            module.get_memory_node_info = lambda node_id=0: info(total_memory=total, available_memory=available)

        spec.loader.exec_module = exec_module
        return spec


if _VIEW:
    sys.meta_path.insert(0, _SmallerNode())
