"""ICM Studio's Label Studio tasks through a Label Studio server, with its SDK (run in `.venv-ls`, where the
SDK is: tests/test_label_studio_server.py runs it).

    python tests/tools/ls_roundtrip.py URL TOKEN CONFIG.xml TASKS.json EXAMPLE_ID CHOICE OUT.json

Creates a project with the labeling config, imports the tasks (data, predictions, annotations), adds one
annotation as the token's user (CHOICE on the task whose data.id is EXAMPLE_ID), and writes the project's
JSON export to OUT.json: with predictions and annotators in full (the export API's serialization options),
as a Label Studio user exports a project with its predictions.
"""

from __future__ import annotations

import json
import sys
import time

from label_studio_sdk import LabelStudio


def main() -> None:
    url, token, config_path, tasks_path, example_id, choice, out_path = sys.argv[1:8]
    ls = LabelStudio(base_url=url, api_key=token, timeout=120)
    with open(config_path) as handle:
        config = handle.read()
    with open(tasks_path) as handle:
        tasks = json.load(handle)
    project = ls.projects.create(title="ICM Studio round trip", label_config=config)
    ls.projects.import_tasks(id=project.id, request=tasks)
    imported = list(ls.tasks.list(project=project.id))
    target = next(t for t in imported if str(t.data.get("id")) == example_id)
    from_name = next(iter(ls.projects.get(id=project.id).parsed_label_config))
    to_name = ls.projects.get(id=project.id).parsed_label_config[from_name]["to_name"][0]
    ls.annotations.create(id=target.id, lead_time=4.2, result=[
        {"from_name": from_name, "to_name": to_name, "type": "choices", "value": {"choices": [choice]}}])
    export = ls.projects.exports.create(id=project.id, title="round trip", serialization_options={
        "predictions": {"only_id": False}, "annotations__completed_by": {"only_id": False}})
    deadline = time.monotonic() + 120
    while ls.projects.exports.get(id=project.id, export_pk=export.id).status != "completed":
        if time.monotonic() > deadline:
            raise SystemExit("the export did not complete in 120 s")
        time.sleep(1)
    data = b"".join(ls.projects.exports.download(id=project.id, export_pk=export.id, export_type="JSON"))
    with open(out_path, "wb") as handle:
        handle.write(data)
    print(json.dumps({"project": project.id, "tasks": len(imported), "annotated_task": target.id,
                      "user": ls.users.whoami().email}))


if __name__ == "__main__":
    main()
