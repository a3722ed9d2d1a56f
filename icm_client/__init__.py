"""A Python client for ICM Studio's REST API: upload a file or a table, start ICM runs with seeds, wait with a
progress bar fed by the run's websocket, read label sets as pandas DataFrames, fetch the agreement report.

    from icm_client import Client
    with Client("http://127.0.0.1:8000", token="...") as client:
        dataset = client.upload(frame, task="claims", name="my claims")
        runs = client.wait(client.start_runs(dataset, seeds=[0, 1, 2]))
        labels = client.labels(dataset)

docs/client.md is a worked example. Install with `pip install -e '.[client]'`.
"""

from .client import Client
from .errors import APIError, ICMClientError, Problem, RunFailed, WaitTimeout
from .frames import label_sets_frame, labels_frame, report_frame, runs_frame
from .records import AgreementReport, Dataset, LabelSet, Run

__all__ = [
    "APIError",
    "AgreementReport",
    "Client",
    "Dataset",
    "ICMClientError",
    "LabelSet",
    "Problem",
    "Run",
    "RunFailed",
    "WaitTimeout",
    "label_sets_frame",
    "labels_frame",
    "report_frame",
    "runs_frame",
]
