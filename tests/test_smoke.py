async def test_start_without_code(user_factory):
    user = user_factory(111, language_code="en")
    await user.send("/start")
    assert "invite link" in user.last_text()
