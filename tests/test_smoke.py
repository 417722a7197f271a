from tests.conftest import auth_header, login


def test_login_then_protected_route(client):
    token = login(client)
    response = client.get("/protected", headers=auth_header(token))
    assert response.status_code == 200
    assert response.get_json() == {"id": 1, "username": "joe"}


def test_protected_route_without_token_is_401_json(client):
    response = client.get("/protected")
    assert response.status_code == 401
    assert response.get_json() == {
        "status_code": 401,
        "error": "Authorization Required",
        "description": "Request does not contain an access token",
    }
    assert response.headers["WWW-Authenticate"] == 'JWT realm="Login Required"'
