"""The dashboard's entry point: `streamlit run dashboard/app.py` (or `whistleloop dashboard`).

One file per page under `pages/`; the sidebar holds the language toggle (Chinese by default).
"""

from __future__ import annotations

import streamlit as st

from dashboard.i18n import DEFAULT, LANGUAGES, t

PAGES = (
    ("pages/command_centre.py", "page.command_centre", ":material/campaign:"),
    ("pages/departments.py", "page.departments", ":material/apartment:"),
    ("pages/linkage.py", "page.linkage", ":material/hub:"),
    ("pages/cases.py", "page.cases", ":material/list_alt:"),
    ("pages/audit.py", "page.audit", ":material/verified_user:"),
)


def main() -> None:
    st.set_page_config(page_title=t("app.title"), page_icon=":material/campaign:", layout="wide")
    st.session_state.setdefault("lang", DEFAULT)
    with st.sidebar:
        st.radio(
            t("language"),
            options=list(LANGUAGES),
            format_func=LANGUAGES.__getitem__,
            key="lang",
            horizontal=True,
        )
    pages = [
        st.Page(path, title=t(key), icon=icon, default=index == 0)
        for index, (path, key, icon) in enumerate(PAGES)
    ]
    st.navigation(pages).run()


main()
