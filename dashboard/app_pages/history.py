"""History: search, filter and browse every run; open one to watch, download, curate, delete or reuse it."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pandas as pd
import streamlit as st

from catalog import CatalogError, SearchResult, sync
from catalog.schema import explain
from catalog.search import MAX_PER_PAGE
from core.contract import JobError
from dashboard import compare, cost, navigation, state, tracker, views
from dashboard.history import (
    FACETS,
    SORT_LABELS,
    Deleted,
    Query,
    card_line,
    delete_run,
    download_name,
    facet_counts,
    facet_options,
    filters_for,
    no_picture,
    page_key,
    params_rows,
    parse_tags,
    part_rows,
    search,
    size_words,
    skipped_lines,
    split_caption,
    tags_line,
    timing_rows,
    total_words,
    undo_delete,
)
from dashboard.jobs import retry_trace, retryable
from dashboard.signin import signed_in_email

K = "history."
GRID_COLUMNS = 4
CARD_HEIGHT = 440
# The run deleted last (dashboard.history.Deleted), for the confirmation and its Undo above the grid. (A comment:
# Streamlit's magic draws a bare string in a page script on the page.)
DELETED = K + "deleted"
SHOWN_PAGE = K + "shown_page"
THUMB_HEIGHT = 150
PROMPT_ON_CARD = 70
MINE = "Mine"
EVERYONE = "Everyone"


def _me() -> str | None:
    """The signed-in user's address, when sign-in says who it is (OIDC); None for a shared password or none."""
    return signed_in_email()


def _open(run_id: str) -> None:
    st.query_params["run"] = run_id


def _close() -> None:
    st.query_params.pop("run", None)


def _query() -> Query:
    """The query as the widgets hold it (drawn later; read here from session state)."""
    query = Query(
        text=st.session_state.get(K + "text", ""),
        facets={name: st.session_state.get(K + f"facet.{name}", []) for name in FACETS},
        date_from=st.session_state.get(K + "from"),
        date_to=st.session_state.get(K + "to"),
        favourites=st.session_state.get(K + "favourites", False),
        tag=st.session_state.get(K + "tag", ""),
        sort=st.session_state.get(K + "sort", "newest"),
        submitted_by=_me() if st.session_state.get(K + "whose") == MINE else None,
    )
    query.page = st.session_state.get(page_key(query), 1)
    return query


def _search_bar() -> None:
    text_col, sort_col, sync_col = st.columns([5, 2, 2], vertical_alignment="bottom")
    text_col.text_input(
        "Search prompts, tags and notes",
        key=K + "text",
        placeholder='e.g. studio, "orange suit", talk*',
    )
    sort_col.selectbox("Sort", list(SORT_LABELS), format_func=SORT_LABELS.__getitem__, key=K + "sort")
    if sync_col.button(
        "Sync from bucket", icon=":material/sync:", help="Add runs found as metadata.json in the store", key=K + "sync"
    ):
        with st.spinner("Reading metadata.json files from the store…"):
            report = sync(state.catalog(), state.store())
        st.toast(f"Sync: {report.summary()}", icon=":material/sync:")
        for line in skipped_lines(report.skipped):
            st.warning(line)


def _filters(result: SearchResult) -> None:
    with st.expander("Filters", icon=":material/filter_list:", expanded=True):
        columns = st.columns(len(FACETS))
        for column, (name, label) in zip(columns, FACETS.items(), strict=True):
            key = K + f"facet.{name}"
            selected = st.session_state.get(key, [])
            # The choices' labels must not change from one search to the next: Streamlit keeps a selection by its
            # label, so a count inside the label turned the selected value into a stale label (0 runs). The
            # counts go underneath instead.
            column.multiselect(label, facet_options(result, name, selected), key=key)
            column.caption(facet_counts(result, name))
        dates = st.columns([1, 1, 1, 2], vertical_alignment="bottom")
        dates[0].date_input("From", value=None, key=K + "from")
        dates[1].date_input("To", value=None, key=K + "to")
        dates[2].toggle("Favourites only", key=K + "favourites")
        dates[3].text_input("Tag", key=K + "tag", placeholder="one tag")
        if _me():
            st.segmented_control(
                "Submitted by", [MINE, EVERYONE], default=EVERYONE, key=K + "whose", help="Runs you submitted"
            )


def _short(text: str, limit: int = PROMPT_ON_CARD) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _card(run: dict[str, Any], store: Any, key: str = K + "open.") -> None:
    # One height for every card: the thumbnail is letterboxed and the prompt shortened, so a row lines up.
    with st.container(border=True, height=CARD_HEIGHT):
        if not views.thumbnail(store, run.get("thumb_key")):
            # Why there is no picture, in the box's place (a failed card read "· · ? steps" over an empty box).
            box = st.container(
                height=THUMB_HEIGHT, border=False, vertical_alignment="center", horizontal_alignment="center"
            )
            box.caption(no_picture(run))
        views.status_badge(run["status"], run.get("engine"))
        st.markdown(f"{'★ ' if run.get('favourite') else ''}{views.plain(_short(run.get('prompt') or '(no prompt)'))}")
        st.caption(card_line(run, cost.card_suffix(run)))  # the catalogue's numbers and dates, no user text
        if split := split_caption(run):
            st.caption(f":material/call_split: {split}")  # a count, no user text
        if tags := tags_line(run):
            st.caption(f":material/sell: {views.plain(tags)}")
        st.button("Open", key=key + run["run_id"], on_click=_open, args=(run["run_id"],), width="stretch")
        compare.pick_box(run["run_id"], key)


def _grid(result: SearchResult, key: str = K + "open.") -> None:
    store = state.store()
    for start in range(0, len(result.rows), GRID_COLUMNS):
        columns = st.columns(GRID_COLUMNS)
        for column, run in zip(columns, result.rows[start : start + GRID_COLUMNS], strict=False):
            with column:
                _card(run, store, key)


def _downloads(run: dict[str, Any]) -> None:
    store = state.store()
    left, right = st.columns(2)
    if run.get("video_key"):
        if store.kind == "s3":
            left.link_button("Download MP4", store.url(run["video_key"]), icon=":material/download:")
        else:
            left.download_button(
                "Download MP4",
                data=lambda: store.get(run["video_key"]),
                file_name=download_name(run, "video", "mp4"),
                mime="video/mp4",
                on_click="ignore",
                icon=":material/download:",
            )
    if run.get("metadata_key"):
        right.download_button(
            "Download metadata JSON",
            data=lambda: store.get(run["metadata_key"]),
            file_name=download_name(run, "metadata", "json"),
            mime="application/json",
            on_click="ignore",
            icon=":material/data_object:",
        )


def _curation(run: dict[str, Any]) -> None:
    with st.form(K + "curate"):
        tags = st.text_input("Tags (comma separated)", value=", ".join(run["tag_list"]))
        favourite = st.checkbox("Favourite", value=bool(run.get("favourite")))
        note = st.text_area("Note", value=run.get("note") or "", height=80)
        if st.form_submit_button("Save", icon=":material/save:"):
            # One write to the catalogue and one curation.json in the bucket, so a wiped disk gets them back.
            try:
                state.catalog().curate(
                    run["run_id"], tags=parse_tags(tags), favourite=favourite, note=note, store=state.store()
                )
            except JobError as error:
                st.error(views.plain(error.message), icon=":material/cloud_off:")
                return
            st.toast("Saved", icon=":material/check:")


def _delete(run: dict[str, Any]) -> None:
    with st.popover("Delete", icon=":material/delete:"):
        st.markdown(f"Delete **{views.plain(_short(run.get('prompt') or '(no prompt)', 60))}**?")
        with_files = st.checkbox(
            "Also delete the video, thumbnail and metadata from the store, so that no sync brings it back",
            value=True,
        )
        st.caption("History says what was deleted and offers Undo until you dismiss it.")
        if st.button("Delete", type="primary", key=K + "delete", icon=":material/delete:"):
            try:
                st.session_state[DELETED] = delete_run(
                    state.catalog(), state.store(), run, with_files=with_files, deleted_by=signed_in_email()
                )
            except JobError as error:
                st.error(f"Could not delete the files: {views.plain(error.message)}")
                return
            _close()
            st.rerun()


def _undo(deleted: Deleted) -> None:
    try:
        back = undo_delete(state.catalog(), state.store(), deleted)
    except JobError as error:
        st.session_state[K + "undo_problem"] = error.message
        return
    st.session_state.pop(DELETED, None)
    st.toast("Restored" if back else "Its files are back; a sync will list it", icon=":material/undo:")


def _deleted_notice() -> None:
    """The last delete, said where the user looks (a toast went by unseen, and there was no way back, issue 29)."""
    deleted: Deleted | None = st.session_state.get(DELETED)
    if deleted is None:
        return
    with st.container(border=True, key="history-deleted"):
        what = views.plain(_short(deleted.prompt or deleted.run_id, 80))
        files = " and its files" if deleted.files or not deleted.undoable else ""
        st.markdown(f":material/delete: Deleted **{what}**{files}.")
        if problem := st.session_state.pop(K + "undo_problem", None):
            st.error(f"Could not undo: {views.plain(problem)}")
        undo, done = st.columns([1, 1], width=360)
        if deleted.undoable:
            undo.button("Undo", key=K + "undo", on_click=_undo, args=(deleted,), icon=":material/undo:")
        else:
            undo.caption("Too large to keep for Undo.")
        done.button("Dismiss", key=K + "dismiss_deleted", on_click=st.session_state.pop, args=(DELETED, None))


def _batch_items(run: dict[str, Any]) -> None:
    """A batch job's container: what the job did as a whole, then its videos, each opened on its own."""
    items = state.catalog().search("", job_id=run["job_id"], sort="oldest", per_page=MAX_PER_PAGE)
    seconds = (run.get("execution_ms") or 0) / 1000
    made_in = f" in {views.duration(seconds)}" if seconds else ""
    st.markdown(f"A batch of **{run['batch_items']}** jobs, run one after another{made_in}.")
    views.outcome(run)
    _grid(items, key=K + "batch-open.")


def _parts(run: dict[str, Any], parts: list[dict[str, str]]) -> None:
    """A split run's parts (docs/split.md): the run is one video, its parts rendered at once on several workers;
    each part's span, job, state, GPU time, cost and error, as text in a table (an error is the endpoint's)."""
    failed = sum(1 for part in parts if part["error"])
    total = cost.cost_text(run).split(" (")[0]
    line = f"{split_caption(run)}, rendered at once on several workers and joined into one video; cost {total}"
    st.markdown(f"**Parts** · {line} (the parts' sum){f' · {failed} failed' if failed else ''}")
    st.dataframe(parts, hide_index=True, width="stretch")


@st.dialog("Run", width="large", on_dismiss=_close)
def _detail(run_id: str) -> None:
    """One run, in a dialog over the grid: opened from a card far down the page it is still in view (drawn below
    the filters it opened off-screen, issue 16); closing it (button, Esc or the cross) drops `?run=` from the URL."""
    run = state.catalog().get(run_id)
    if run is None:
        st.warning(f"Run `{views.plain(run_id)}` is not in the catalogue (deleted?).")
        return
    # One way to close: the dialog's own × (and Esc, or a click beside it); a second "Close" button beside the ×
    # was clutter (issue 29). Both drop `?run=` through on_dismiss.
    with st.container():
        views.status_badge(run["status"], run.get("engine"))
        st.subheader(views.plain(run.get("prompt") or "(no prompt)"), anchor=False)
        st.caption(f"job `{run['job_id']}` · made {(run.get('created_at') or '')[:19].replace('T', ' ')} UTC")
        if run.get("batch_items"):
            _batch_items(run)
            return
        if run.get("item_id") and state.catalog().get(run["job_id"]):
            st.button(
                f"Part of batch `{run['job_id']}`: see all its videos",
                on_click=_open,
                args=(run["job_id"],),
                icon=":material/view_module:",
                key=K + "batch",
            )
        watch, facts = st.columns([3, 2], gap="large")
        with watch:
            views.video(state.store(), run.get("video_key"))
            views.outcome(run)
            trace = retry_trace(run, state.catalog())
            if trace:
                st.caption(views.plain(trace))
            if retryable(run):
                # Lost and failed runs run again from here (issue 29: the text said to POST /retry/…).
                tracker.retry_button(run, K + "retry.")
            views.warnings(run)
        with facts:
            a, b = st.columns(2)
            a.metric("Video", views.duration(run.get("video_duration_s")))
            gpu_s = (run.get("total_ms") or 0) / 1000 if run.get("total_ms") else None
            wall_ms = (run.get("timings") or {}).get("wall_ms") if run.get("parts") else None
            if isinstance(wall_ms, (int, float)) and wall_ms > 0:
                # A split run's parts ran at once: its GPU time (the parts' sum, what it costs) is not how long
                # it took to make.
                b.metric(
                    "Made in",
                    views.duration(wall_ms / 1000),
                    help=f"From the split to the join; the parts used {views.duration(gpu_s)} of GPU time together",
                )
            else:
                b.metric("Made in", views.duration(gpu_s))
            a.metric("Size", size_words(run) or "—")
            b.metric("Engine", run.get("engine") or "—")
            # The tile shows the sum alone ("$0 (preview engine)" was cut to "$0 (preview …"); the badge above and
            # the tooltip say why a preview costs nothing.
            a.metric("Cost", cost.cost_text(run).split(" (")[0], help=cost.cost_help(run, state.catalog().prices))
            b.metric("GPU", run.get("gpu_name") or "—")
            _downloads(run)
            if st.button("Reuse these params", type="primary", icon=":material/replay:", key=K + "reuse"):
                st.session_state[state.REUSE_PARAMS] = run["params"]
                st.switch_page(navigation.page("submit"))
            _delete(run)
        parts = part_rows(run)
        if parts:
            _parts(run, parts)
        timings = timing_rows(run.get("timings") or {})
        tabs = st.tabs(["Timing", "Parameters", "Tags & note"])
        with tabs[0]:
            if timings:
                st.bar_chart(pd.DataFrame(timings), x="stage", y="seconds", horizontal=True, sort=False)
            else:
                st.caption("No timings (the run did not finish).")
        with tabs[1]:
            st.dataframe(params_rows(run.get("params") or {}), hide_index=True, width="stretch")
            st.download_button(
                "Parameters as JSON",
                data=json.dumps(run.get("params") or {}, indent=2),
                file_name=download_name(run, "params", "json"),
                mime="application/json",
                on_click="ignore",
            )
        with tabs[2]:
            _curation(run)


def main() -> None:
    """Draw the History page; a damaged or read-only catalogue is one line saying what to do, not a traceback."""
    st.title("History", anchor=False)
    try:
        _page()
    except CatalogError as error:
        st.error(str(error), icon=":material/database:")
    except sqlite3.DatabaseError as error:  # damage found past the pages that opening reads
        st.error(str(explain(error, state.settings().catalog_file)), icon=":material/database:")


def _page() -> None:
    tracker.pick_up()  # new runs in the store appear by themselves (issue 29)
    _search_bar()
    query = _query()
    result = search(state.catalog(), query)
    if query.page > result.pages:
        # Runs were deleted since this page was chosen: start the search again from its first page.
        st.session_state.pop(page_key(query), None)
        query.page = 1
        result = search(state.catalog(), query)
    _filters(result)
    _deleted_notice()
    selected = st.query_params.get("run")
    if selected:
        _detail(selected)
    note = f" ({result.query_note})" if result.query_note else ""
    st.caption(f"{total_words(result)}{note}")
    st.caption(cost.total_line(state.catalog().cost_total(query.text, **filters_for(query))))
    compare.picked_bar()
    if result.total == 0:
        _nothing_found(query)
        return
    _to_top_on_new_page(query)
    _grid(result)
    if result.pages > 1:
        st.pagination(result.pages, key=page_key(query), max_visible_pages=9)


def _nothing_found(query: Query) -> None:
    """An empty History points to Submit; an empty search says how to widen it."""
    if query.signature() == Query(sort=query.sort, submitted_by=query.submitted_by).signature():
        st.info("No runs yet: make your first video on the Submit page.", icon=":material/video_library:")
        st.page_link(navigation.page("submit"), label="Go to Submit", icon=":material/add_circle:")
    else:
        st.info("No runs match: clear the search text or some filters.", icon=":material/search_off:")


TO_TOP = """<script>
// Another page of runs was chosen at the grid's foot: show its first cards, not the foot of the new page.
const main = window.parent.document.querySelector('[data-testid="stMain"]');
if (main) main.scrollTo({top: 0});
window.parent.scrollTo({top: 0});
</script>"""


def _to_top_on_new_page(query: Query) -> None:
    """Scroll to the page's top when the page of runs changed since the last drawing ("Next page" left the view
    at the bottom, issue 29)."""
    shown = (query.signature(), query.page)
    before = st.session_state.get(SHOWN_PAGE)
    st.session_state[SHOWN_PAGE] = shown
    if before is not None and before[0] == shown[0] and before[1] != shown[1]:
        st.iframe(TO_TOP, height=1)  # our own script, no user text; same origin, like Compare's


main()
