"""synthvu dashboard entry point: ``streamlit run app.py`` (or ``python -m synthvu_core serve``).

The router and the shared frame: page config, optional password gate, sidebar generator picker
(remembered across pages), report download, then the selected page. Pages only draw what
``synthvu_core`` returns; the drawing code they share lives in ``dashboard/``.
"""

import streamlit as st

st.set_page_config(
    page_title="synthvu", page_icon=":material/neurology:", layout="wide", initial_sidebar_state="expanded"
)

from dashboard import frame  # noqa: E402  (after set_page_config, by Streamlit's rule)

frame.gate()

PAGES = {
    "Explore": [
        st.Page("app_pages/overview.py", title="Overview", icon=":material/home:", default=True),
        st.Page("app_pages/generate.py", title="Generate", icon=":material/auto_awesome:"),
        st.Page("app_pages/volumes.py", title="Volumes", icon=":material/view_in_ar:"),
        st.Page("app_pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
    ],
    "Measure": [
        st.Page("app_pages/utility.py", title="Utility", icon=":material/task_alt:"),
        st.Page("app_pages/privacy.py", title="Privacy", icon=":material/shield:"),
        st.Page("app_pages/tradeoffs.py", title="Trade-offs", icon=":material/balance:"),
        st.Page("app_pages/compare.py", title="Compare", icon=":material/compare:"),
        st.Page("app_pages/clinical.py", title="Clinical", icon=":material/clinical_notes:"),
    ],
    "About": [
        st.Page("app_pages/models_data.py", title="Models & data", icon=":material/database:"),
    ],
}

page = st.navigation(PAGES)
with frame.listed_folders():  # a composed DP bound counts the runs of the folders this session added too
    selected = frame.sidebar()
    if selected is not None and selected.report is not None:
        with st.sidebar:
            st.download_button(
                "Download report (HTML)",
                data=lambda: frame.report_file(selected),  # built on click only
                file_name=f"{selected.name}-report.html",
                mime="text/html",
                icon=":material/download:",
                help="One self-contained HTML file with this generator's figures and tables (opens offline).",
            )
    page.run()
