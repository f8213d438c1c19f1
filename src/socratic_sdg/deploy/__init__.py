"""Running the pipeline: locally under the KFP local runner (:mod:`.local_run`) and on a cluster's
pipeline server (:mod:`.submit`). The top of the stack: it imports the pipelines, which import the
components, which import the stages; nothing below imports it."""
