"""/api/v1/products: CRUD, search, category, pagination, stock fields, tenancy, validation."""

from __future__ import annotations

from typing import Any

from hub.settings import Settings
from tests.api.order_helpers import Client, call, make_product
from tests.factories import make_key


async def test_create_get_update_delete(client: Client, auth: dict[str, str]) -> None:
    product = await make_product(client, auth, price="149.995", description="cotton")
    assert product["id"].startswith("prd_")
    assert product["price"] == 150.0  # shown at the currency's precision, stored exactly
    assert product["currency"] == "SAR"
    assert (product["stock_quantity"], product["in_stock"]) == (50, True)
    got = (await call(client, "GET", f"/api/v1/products/{product['id']}", auth, 200))["data"]
    assert got == product
    updated = (
        await call(
            client, "PUT", f"/api/v1/products/{product['id']}", auth, 200, json={"stock_quantity": 0, "price": 120}
        )
    )["data"]
    assert (updated["stock_quantity"], updated["in_stock"], updated["price"], updated["name"]) == (
        0,
        False,
        120.0,
        "Premium T-Shirt",
    )
    echoed = await call(client, "PUT", f"/api/v1/products/{product['id']}", auth, 200, json=updated | {"name": "Tee"})
    assert echoed["data"]["name"] == "Tee"
    deleted = await call(client, "DELETE", f"/api/v1/products/{product['id']}", auth, 200)
    assert deleted["data"]["id"] == product["id"]
    await call(client, "GET", f"/api/v1/products/{product['id']}", auth, 404)
    await call(client, "PUT", f"/api/v1/products/{product['id']}", auth, 404, json={"name": "x"})
    await call(client, "DELETE", f"/api/v1/products/{product['id']}", auth, 404)
    listed = await call(client, "GET", "/api/v1/products", auth, 200)
    assert listed["data"] == []


def names(body: dict[str, Any]) -> list[str]:
    return sorted(p["name"] for p in body["data"])


async def test_search_category_stock_and_pages(client: Client, auth: dict[str, str]) -> None:
    await make_product(client, auth, name="Red Shirt", sku="RS-1", category="Clothing")
    await make_product(client, auth, name="Mug", sku="MUG-SHIRT", category="Kitchen", stock_quantity=0)
    await make_product(client, auth, name="Poster", sku="P-1", category="Shirts & more")
    assert names(await call(client, "GET", "/api/v1/products?search=shirt", auth, 200)) == [
        "Mug",
        "Poster",
        "Red Shirt",
    ]
    assert names(await call(client, "GET", "/api/v1/products?category=clothing", auth, 200)) == ["Red Shirt"]
    assert names(await call(client, "GET", "/api/v1/products?in_stock=false", auth, 200)) == ["Mug"]
    page = await call(client, "GET", "/api/v1/products?per_page=2&page=2", auth, 200)
    assert page["meta"] == {"current_page": 2, "per_page": 2, "total": 3, "has_next": False}
    assert len(page["data"]) == 1
    assert (await call(client, "GET", "/api/v1/products?limit=1", auth, 200))["meta"]["per_page"] == 1
    await call(client, "GET", "/api/v1/products?per_page=500", auth, 422)


async def test_validation(client: Client, auth: dict[str, str]) -> None:
    body = await call(
        client,
        "POST",
        "/api/v1/products",
        auth,
        422,
        json={"name": "", "price": "free", "currency": "EURO", "stock_quantity": -1, "colour": "red"},
    )
    assert set(body["details"]) == {"name", "price", "currency", "stock_quantity", "colour"}
    body = await call(client, "POST", "/api/v1/products", auth, 422, json={"name": "x"})
    assert set(body["details"]) == {"price"}
    body = await call(
        client, "POST", "/api/v1/products", auth, 422, json={"name": "x", "price": 1, "stock_quantity": "5"}
    )
    assert set(body["details"]) == {"stock_quantity"}
    product = await make_product(client, auth)
    body = await call(client, "PUT", f"/api/v1/products/{product['id']}", auth, 422, json={"price": None})
    assert body["details"] == {"price": "must not be null"}
    usd = await make_product(client, auth, currency="usd", price="9.99")
    assert usd["currency"] == "USD"


async def test_other_organizations_products_are_404(client: Client, auth: dict[str, str], settings: Settings) -> None:
    product = await make_product(client, auth)
    other = {"Authorization": f"Bearer {await make_key(settings, org='other')}"}
    for method in ("GET", "PUT", "DELETE"):
        kwargs = {"json": {"name": "x"}} if method == "PUT" else {}
        body = await call(client, method, f"/api/v1/products/{product['id']}", other, 404, **kwargs)
        assert body["error"] == "Product not found"
    assert (await call(client, "GET", "/api/v1/products", other, 200))["data"] == []
    assert (await call(client, "GET", f"/api/v1/products/{product['id']}", auth, 200))["data"][
        "name"
    ] == "Premium T-Shirt"
