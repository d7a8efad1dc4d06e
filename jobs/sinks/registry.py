"""The sinks a run can write through, by the name --sink (and the Glue job's --carve_sink) takes."""

from __future__ import annotations

from jobs.sinks.base import Sink, SinkContext
from jobs.sinks.carve import CarveSink
from jobs.sinks.glue_connector import GlueConnectorSink
from jobs.sinks.import_s3 import ImportS3Sink
from transforms.errors import SinkError

SINKS: dict[str, type[Sink]] = {
    CarveSink.name: CarveSink,
    GlueConnectorSink.name: GlueConnectorSink,
    ImportS3Sink.name: ImportS3Sink,
}
DEFAULT_SINK = CarveSink.name


def sink_names() -> tuple[str, ...]:
    return tuple(SINKS)


def make_sink(name: str, context: SinkContext) -> Sink:
    if name not in SINKS:
        raise SinkError(f"unknown sink '{name}'; use one of: {', '.join(SINKS)}")
    return SINKS[name](context)
