"""`order-ops`: the operator tools on their own, as the edge image carries them (ECS Exec)."""

import click

from . import commands_attention, commands_audit, commands_inventory, commands_saga

COMMANDS: tuple[click.Command, ...] = (
    *commands_attention.COMMANDS,
    commands_audit.audit,
    *commands_saga.COMMANDS,
    commands_inventory.inventory,
)


@click.group()
def main() -> None:
    """Operate the order saga of one environment (ORDER_SAGA_ENVIRONMENT, `local` by default)."""


for _command in COMMANDS:
    main.add_command(_command)
