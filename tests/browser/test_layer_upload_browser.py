"""Layer upload on /grids/layers in a real browser: the page polls the background import."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Layer

pytestmark = pytest.mark.browser


def test_upload_shows_progress_and_counts(web, demo_app, tmp_path):
    demo_app.config["JOB_DIR"] = str(tmp_path / "jobs")
    building = tmp_path / "县建筑.geojson"
    building.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"名称": "浏览器测试大厦"},
        "geometry": {"type": "Polygon", "coordinates": [[[103.4500, 22.8700], [103.4502, 22.8700],
                     [103.4502, 22.8702], [103.4500, 22.8702], [103.4500, 22.8700]]]}}]},
        ensure_ascii=False), encoding="utf-8")
    web.login("admin")
    page = web.page
    try:
        page.goto(f"{web.base_url}/grids/layers")
        assert page.is_hidden("#layer-job")
        page.select_option("select[name=kind]", "buildings")
        page.set_input_files("input[name=file]", str(building))
        page.click("#layer-upload button[type=submit]")
        page.wait_for_function(
            "() => /^(完成|失败)/.test(document.querySelector('#layer-job .job-stage').textContent)",
            timeout=60_000,
        )
        assert page.text_content("#layer-job .job-stage") == "完成"
        assert "建筑: 1 个要素" in page.text_content("#layer-job .job-result")
        assert page.get_attribute("#layer-job progress", "value") == "1" or page.evaluate(
            "document.querySelector('#layer-job progress').value") == 1
        assert "?job=" in page.url
        # Reloading shows the same finished job, rendered by the server.
        page.reload()
        assert "建筑: 1 个要素" in page.text_content("#layer-job .job-result")
        web.screenshot("layer-upload")
    finally:
        with demo_app.app_context():
            from app.services.grids.layers import delete_layers

            ids = db.session.execute(
                select(Layer.id).where(Layer.kind == "buildings", Layer.name.like("县建筑%"))
            ).scalars().all()
            delete_layers(db.session, ids)
            db.session.commit()
