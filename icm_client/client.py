"""The client: ICM Studio's REST API from Python, on httpx. Every method is one task a notebook user has
(upload, start runs, wait, read labels, compare), and every refusal is an APIError with the API's message."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from .errors import APIError, ICMClientError, RunFailed
from .records import AgreementReport, Dataset, LabelSet, Run

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# The largest page the API serves (webapp/api/pagination.py): fewest round trips.
PAGE_SIZE = 500

DatasetRef = Dataset | int
LabelSetRef = LabelSet | Run | int


class Client:
    """A connection to an ICM Studio server, signed in with an API token.

    `Client(url, token)`, or `Client(url, username=..., password=...)` to exchange a password for the token
    (POST /api/auth/token/). A context manager; `close()` otherwise."""

    def __init__(self, url: str, token: str | None = None, *, username: str | None = None,
                 password: str | None = None, timeout: float = 60.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport,
                                  headers={"Accept": "application/json"})
        if token is None:
            try:
                if username is None or password is None:
                    raise ValueError("give a token, or a username and password to get one")
                token = self._token(username, password)
            except BaseException:
                self._http.close()
                raise
        self.token = token
        self._http.headers["Authorization"] = f"Token {token}"

    @classmethod
    def login(cls, url: str, username: str, password: str, *, timeout: float = 60.0) -> Client:
        """A client signed in with a username and password; `client.token` is the token to keep."""
        return cls(url, username=username, password=password, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"  # never the token: a notebook's output is shared

    # -- datasets ---------------------------------------------------------------------------------------------------

    def datasets(self) -> list[Dataset]:
        """Every dataset you are a member of."""
        return [Dataset.from_json(d) for d in self._pages("/api/datasets/")]

    def dataset(self, dataset: DatasetRef) -> Dataset:
        return Dataset.from_json(self._request("GET", f"/api/datasets/{_id(dataset)}/"))

    def upload(self, data: str | os.PathLike[str] | pd.DataFrame | pa.Table, *, task: str, name: str | None = None,
               template: str | None = None, consistency: str | None = None,
               description: str | None = None) -> Dataset:
        """Make a dataset: from a file (JSON array, JSONL, CSV, Parquet, a zipped Hugging Face datasets folder)
        sent as it is, a folder `datasets.Dataset.save_to_disk` wrote (zipped here), or a pandas DataFrame or a
        pyarrow Table, written as Parquet in memory so that the columns keep their types (a named index is a
        column; a plain one is left out). `name` defaults to the file's.

        `task` is a task preset (claims, truthfulqa, gsm8k, alpaca...); `template` and `consistency` override
        the preset's. A rejected file raises APIError listing each problem with its row and field."""
        filename, body = _as_file(data, name=name)
        form = {"task": task, "name": name, "template": template, "consistency": consistency,
                "description": description}
        answer = self._request("POST", "/api/datasets/", files={"file": (filename, body)},
                               data={k: v for k, v in form.items() if v is not None})
        return Dataset.from_json(answer)

    def delete_dataset(self, dataset: DatasetRef) -> None:
        """Delete a dataset with its examples, label sets and runs (owners only)."""
        self._request("DELETE", f"/api/datasets/{_id(dataset)}/")

    # -- runs -------------------------------------------------------------------------------------------------------

    def start_runs(self, dataset: DatasetRef, *, method: str = "icm", seeds: Sequence[int] = (0, 1, 2),
                   task: str | None = None, backend: str = "transformers", model: str = "",
                   limit: int | None = None, settings: dict[str, Any] | None = None,
                   shards: int | None = None, base_url: str | None = None) -> list[Run]:
        """Queue one run of `method` per seed (a method whose labels do not depend on the seed runs once) and
        return them, queued. `settings`: the run's settings by name (iterations, batch_size, readout...; GET
        /api/schema/ lists them); left out, each takes the preset's choice or one sized to the data. `task`
        defaults to the dataset's. Nothing is queued if anything is refused (APIError names it)."""
        if task is None:
            task = dataset.task if isinstance(dataset, Dataset) else self.dataset(dataset).task
        body: dict[str, Any] = {"dataset": _id(dataset), "task": task, "method": method, "backend": backend,
                                "model": model, "seeds": list(seeds), "config": dict(settings or {})}
        for key, value in (("limit", limit), ("shards", shards), ("base_url", base_url)):
            if value is not None:
                body[key] = value
        first = self._request("POST", "/api/runs/", json=body)
        ids: list[int] = first.get("runs") or [first["id"]]
        return [Run.from_json(first) if pk == first["id"] else self.run(pk) for pk in ids]

    def run(self, run: Run | int) -> Run:
        return Run.from_json(self._request("GET", f"/api/runs/{_id(run)}/"))

    def runs(self, dataset: DatasetRef | None = None) -> list[Run]:
        """Your runs, newest first (only `dataset`'s, when given)."""
        params = {"dataset": _id(dataset)} if dataset is not None else {}
        return [Run.from_json(r) for r in self._pages("/api/runs/", params)]

    def cancel(self, run: Run | int) -> Run:
        """Stop a run within seconds; what it had labeled is kept as a partial label set."""
        return Run.from_json(self._request("POST", f"/api/runs/{_id(run)}/cancel/"))

    def resume(self, run: Run | int) -> Run:
        """Queue a failed or cancelled run again; it continues from its last checkpoint."""
        return Run.from_json(self._request("POST", f"/api/runs/{_id(run)}/resume/"))

    def wait(self, runs: Run | int | Iterable[Run | int], *, progress: bool = True, timeout: float | None = None,
             poll_s: float = 2.0, raise_on_failure: bool = True, websocket: bool = True) -> list[Run]:
        """Block until the runs have finished, with a progress bar per run fed by its websocket (polled over
        HTTP every `poll_s` seconds where the websocket is refused or drops, or with `websocket=False`).

        Returns the runs as they ended, in the order given. Raises RunFailed naming each failed run with its
        error (unless `raise_on_failure=False`) and WaitTimeout after `timeout` seconds. A cancelled run is
        returned, not raised: someone chose to stop it."""
        from .progress import wait_for

        refs = [runs] if isinstance(runs, Run | int) else list(runs)
        current = [r if isinstance(r, Run) else self.run(r) for r in refs]
        done = wait_for(current, fetch=self.run, ws_url=self._ws_url, headers={"Authorization": f"Token {self.token}"},
                        progress=progress, timeout=timeout, poll_s=poll_s, websocket=websocket)
        if raise_on_failure and any(r.status == "failed" for r in done):
            raise RunFailed(done)
        return done

    def _ws_url(self, run_id: int) -> str:
        base = "ws" + self.url.removeprefix("http") if self.url.startswith("http") else self.url
        return f"{base}/ws/runs/{run_id}/?format=json"

    # -- label sets and labels ----------------------------------------------------------------------------------------

    def label_set(self, label_set: LabelSetRef) -> LabelSet:
        return LabelSet.from_json(self._request("GET", f"/api/labelsets/{_label_set_id(label_set)}/"))

    def label_set_list(self, dataset: DatasetRef) -> list[LabelSet]:
        """The dataset's label sets as records (gold, human, ICM, baselines; every version)."""
        return [LabelSet.from_json(s) for s in self._request("GET", f"/api/datasets/{_id(dataset)}/labelsets/")]

    def label_sets(self, dataset: DatasetRef) -> pd.DataFrame:
        """The dataset's label sets as a DataFrame indexed by id: name, version, kind, run, model, counts, and
        `column`, the set's column in `labels`."""
        from .frames import label_sets_frame

        return label_sets_frame(self.label_set_list(dataset))

    def labels(self, sets: DatasetRef | LabelSetRef | Iterable[LabelSetRef] | pd.DataFrame, *,
               scores: bool = False) -> pd.DataFrame:
        """Labels side by side, indexed by the example's id in its file: one column per label set, named
        "<name> v<version>" (True, False, <NA> where the set leaves the example unlabeled), and with `scores`
        a "<column> score" column per set (for a model's set, the log-odds each label was chosen by).

        `sets`: a Dataset (all its label sets), a LabelSet or a Run (its label set), a list of those or of label
        set ids, or rows of `label_sets()` (their index)."""
        from .frames import labels_frame

        chosen = self._resolve_sets(sets)
        return labels_frame([(s, self._pages(f"/api/labelsets/{s.id}/labels/")) for s in chosen], scores=scores)

    def _resolve_sets(self, sets: Any) -> list[LabelSet]:
        if isinstance(sets, Dataset):
            return self.label_set_list(sets)
        if isinstance(sets, LabelSet | Run):
            sets = [sets]
        elif _is_frame(sets):  # rows of label_sets(): their index is the ids
            sets = [int(i) for i in sets.index]
        elif isinstance(sets, int):
            raise TypeError("a bare id could name a dataset or a label set: give Client.dataset(id), or [id] for "
                            "a label set")
        return [s if isinstance(s, LabelSet) else self.label_set(s) for s in sets]

    # -- review -------------------------------------------------------------------------------------------------------

    def agreement(self, dataset: DatasetRef, label_sets: Iterable[LabelSetRef] | pd.DataFrame | None = None, *,
                  gold: LabelSetRef | None = None) -> AgreementReport:
        """The agreement report: each set's accuracy against gold (the latest, or `gold`) with its 95% interval
        and confusion matrix, per category, Cohen's kappa for every pair, McNemar's test of model against human
        sets. `label_sets` defaults to every set of the dataset that is not gold."""
        if label_sets is None:
            ids = [s.id for s in self.label_set_list(dataset) if s.kind != "gold"]
        else:
            ids = _label_set_ids(label_sets)
        params = {"labelsets": ",".join(map(str, ids))}
        if gold is not None:
            params["gold"] = str(_label_set_id(gold))
        return AgreementReport.from_json(self._request("GET", f"/api/datasets/{_id(dataset)}/agreement/",
                                                       params=params))

    def methods(self, dataset: DatasetRef) -> list[dict[str, Any]]:
        """Each method's latest experiment over its seeds against gold: mean accuracy, spread, ICM's label-free
        pick and the seeds' consensus (GET /api/datasets/{id}/methods/)."""
        rows: list[dict[str, Any]] = self._request("GET", f"/api/datasets/{_id(dataset)}/methods/")
        return rows

    # -- HTTP ---------------------------------------------------------------------------------------------------------

    def _token(self, username: str, password: str) -> str:
        answer = self._request("POST", "/api/auth/token/", json={"username": username, "password": password})
        return str(answer["token"])

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ICMClientError(f"cannot reach {self.url}: {exc}") from exc
        if resp.is_redirect:
            # Not followed, so the token never goes to another address: say where the server points instead.
            raise APIError(resp.status_code, f"the server redirects to {resp.headers.get('Location', '?')}: "
                                             "connect to that address (https?)")
        if resp.is_error:
            try:
                body: Any = resp.json()
            except ValueError:
                body = resp.text
            raise APIError.from_response(resp.status_code, body, resp.reason_phrase)
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()

    def _pages(self, path: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every item of a paginated list, page by page (page numbers: the `next` link names the server as
        it was asked, which behind a proxy may not be the address this client uses)."""
        items: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = self._request("GET", path, params={**(params or {}), "page": page, "page_size": PAGE_SIZE})
            if isinstance(answer, list):  # an endpoint without pagination
                return answer
            items.extend(answer["results"])
            if not answer.get("next"):
                return items
            page += 1


def _is_frame(value: object) -> bool:
    """A pandas DataFrame, without importing pandas for the question."""
    return hasattr(value, "index") and hasattr(value, "columns")


def _label_set_ids(sets: Any) -> list[int]:
    """Label set ids from rows of label_sets() (their index) or from records, runs and ids."""
    if _is_frame(sets):
        return [int(i) for i in sets.index]
    return [_label_set_id(s) for s in sets]


def _id(ref: Any) -> int:
    if isinstance(ref, bool) or not isinstance(ref, Dataset | Run | LabelSet | int):
        raise TypeError(f"expected a record or an id, not {type(ref).__name__}")
    return ref if isinstance(ref, int) else ref.id


def _label_set_id(ref: LabelSetRef) -> int:
    """A label set's id; a Run stands for its label set, which it has once it has written labels."""
    if isinstance(ref, Run):
        if ref.label_set is None:
            raise ValueError(f"run {ref.id} has no label set yet (status {ref.status}): wait for it first")
        return ref.label_set
    return _id(ref)


def _as_file(data: Any, *, name: str | None) -> tuple[str, bytes]:
    """The upload's file name and bytes. A table is written here; a file is sent as it is."""
    if isinstance(data, str | os.PathLike):
        path = Path(data)
        if path.is_dir():  # a folder `datasets.Dataset.save_to_disk` wrote: the server takes it zipped
            return f"{path.name or 'dataset'}.zip", _zip_folder(path)
        # The server reads the format from the suffix, or from the content where the suffix is another.
        return path.name, path.read_bytes()
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(data, pa.Table):
        table = data
    elif hasattr(data, "to_parquet") and hasattr(data, "columns"):  # pandas, without importing it here
        # A named index (df.set_index("id")) is data; an unnamed one is row numbers, even after a filter made
        # them uneven, where pyarrow's default would add a column __index_level_0__ to every example.
        named = any(n is not None for n in data.index.names)
        table = pa.Table.from_pandas(data, preserve_index=named)
    else:
        raise TypeError(f"cannot upload a {type(data).__name__}: give a file's path, a pandas DataFrame or a "
                        "pyarrow Table")
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return f"{_file_stem(name or 'table')}.parquet", buffer.getvalue()


def _zip_folder(folder: Path) -> bytes:
    """A folder as a zip, in memory, the folder's files at its root."""
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _file_stem(name: str) -> str:
    """A file name made from a dataset name: the server names the file in messages and the source column."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    return stem[:100] or "table"
