"""The dashboard's entry point: `streamlit run dashboard/app.py` (or `whistleloop dashboard`).

One file per page under `pages/`; the sidebar holds the language toggle (Chinese by default).
"""

from __future__ import annotations

import streamlit as st

from dashboard.i18n import DEFAULT, LANGUAGES, t

PAGES = (
    ("pages/command_centre.py", "page.command_centre", "🚨"),
    ("pages/departments.py", "page.departments", "🏢"),
    ("pages/linkage.py", "page.linkage", "🔗"),
    ("pages/cases.py", "page.cases", "📋"),
    ("pages/audit.py", "page.audit", "🔏"),
)


def main() -> None:
    st.set_page_config(page_title=t("app.title"), page_icon="📯", layout="wide")
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
