"""``graphkit serve``: the live engine behind an HTTP API (ARCHITECTURE section 10).

* :class:`Service` - the live state behind a write-ahead event log, checkpoints and reloads;
* :func:`create_app` - the FastAPI app over a service (OpenAPI at ``/docs``);
* :class:`EventLog` - the checksummed, segmented, append-only log.

docs/serve.md has the API, the durability argument and deployment.
"""

from graphkit.serve.api import create_app
from graphkit.serve.log import EventLog, LogCorrupt, LogUnwritable
from graphkit.serve.service import Service

__all__ = ["EventLog", "LogCorrupt", "LogUnwritable", "Service", "create_app"]
