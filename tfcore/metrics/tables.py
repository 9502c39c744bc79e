"""The metrics tables every component writes: tags (strings, indexed) and typed fields.

One definition serves both stores (DuckDB DDL, GreptimeDB DDL), rule validation and the
dashboard test. Every table also has the time column `ts`. Counters named `*_cnt` are counts
within the sample period (deltas), so `sum()` over a window is the number of events in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FieldType = Literal["float", "int", "bool", "string"]
TIME_COLUMN = "ts"


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    tags: tuple[str, ...]
    fields: dict[str, FieldType]
    description: str

    @property
    def columns(self) -> tuple[str, ...]:
        return (TIME_COLUMN, *self.tags, *self.fields)


_ALLOCATION_FIELDS: dict[str, FieldType] = {
    "total_tflops": "float",
    "total_vram_bytes": "int",
    "virtual_tflops": "float",
    "virtual_vram_bytes": "int",
    "allocated_tflops": "float",
    "allocated_vram_bytes": "int",
    "allocated_tflops_percent": "float",
    "allocated_vram_percent": "float",
    "allocated_tflops_percent_virtual": "float",
    "allocated_vram_percent_virtual": "float",
    "gpu_count": "int",
    "worker_count": "int",
}

TABLES: dict[str, Table] = {
    table.name: table
    for table in (
        Table(
            "tf_worker_usage",
            ("workload", "worker", "namespace", "pool", "node", "uuid"),
            {
                "compute_tflops": "float",
                "compute_percentage": "float",
                "memory_bytes": "int",
                "memory_percentage": "float",
                "compute_throttled_cnt": "int",
                "vram_freezed_cnt": "int",
                "vram_resumed_cnt": "int",
                "vram_host_bytes": "int",
                "vram_disk_bytes": "int",
            },
            "What each worker uses on each GPU, sampled by the hypervisor.",
        ),
        Table(
            "tf_gpu_usage",
            ("node", "pool", "uuid", "model"),
            {
                "compute_percentage": "float",
                "memory_percentage": "float",
                "memory_bytes": "int",
                "compute_tflops": "float",
                "temperature": "float",
                "power_usage": "float",
                "sm_clock_mhz": "float",
                "memory_clock_mhz": "float",
                "worker_count": "int",
            },
            "What each physical GPU does, sampled by the hypervisor.",
        ),
        Table(
            "tf_worker_resources",
            ("workload", "worker", "namespace", "pool", "node", "qos"),
            {
                "tflops_request": "float",
                "tflops_limit": "float",
                "vram_request_bytes": "int",
                "vram_limit_bytes": "int",
                "gpu_count": "int",
            },
            "What each worker was granted, written by the controller.",
        ),
        Table(
            "tf_node_metrics",
            ("node", "pool"),
            dict(_ALLOCATION_FIELDS),
            "Allocation per node (physical and virtual capacity), written by the controller.",
        ),
        Table(
            "tf_pool_metrics",
            ("pool",),
            {**_ALLOCATION_FIELDS, "node_count": "int"},
            "Allocation per pool, written by the controller.",
        ),
        Table(
            "tf_system_metrics",
            ("pool",),
            {
                "allocation_success_cnt": "int",
                "allocation_fail_cnt": "int",
                "pending_cnt": "int",
                "worker_count": "int",
            },
            "Scheduler outcomes per pool, written by the scheduler.",
        ),
    )
}
