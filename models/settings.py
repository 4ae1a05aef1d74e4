"""Facts the bot learns at run time that the CLI needs too, such as its username."""

from sqlmodel import Field, SQLModel


class BotSetting(SQLModel, table=True):
    __tablename__ = "bot_setting"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=256)
