"""pyserial URL handler for ``sim://`` ports, served by the simulated instruments.

pyserial imports this module when ``"mocks"`` is in
``serial.protocol_handler_packages`` (see :func:`mocks.register`) and a port URL
starts with ``sim://``; ``serial.serial_for_url`` then builds a :class:`Serial` and
opens it, which attaches it to the live instrument named by the URL.
"""

from __future__ import annotations

from typing import Any

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from nbo_recorder.sim._base import Link, SimulatedInstrument
from nbo_recorder.sim._registry import open_instrument


class Serial(SerialBase):
    """A serial port whose far end is a simulated instrument."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._instrument: SimulatedInstrument | None = None
        self._link: Link | None = None
        super().__init__(*args, **kwargs)

    def open(self) -> None:
        """Attach to (or power up) the instrument named by the port URL."""
        if self.is_open:
            raise SerialException("Port is already open.")
        if self.port is None:
            raise SerialException("Port must be configured before it can be used.")
        try:
            instrument = open_instrument(self.port)
        except ValueError as error:
            raise SerialException(str(error)) from error
        self._link = instrument.attach(self.baudrate)
        self._instrument = instrument
        self.is_open = True

    def close(self) -> None:
        """Detach from the instrument; its state lives on for other handles."""
        if self._instrument is not None and self._link is not None:
            self._instrument.detach(self._link)
        self._instrument = None
        self._link = None
        self.is_open = False

    def _connection(self) -> tuple[SimulatedInstrument, Link]:
        if not self.is_open or self._instrument is None or self._link is None:
            raise PortNotOpenError()
        return self._instrument, self._link

    def _reconfigure_port(self) -> None:
        """A baud-rate change takes effect on the simulated line at once."""
        if self._link is not None:
            self._link.baudrate = self.baudrate

    def read(self, size: int = 1, /) -> bytes:
        """Read up to ``size`` bytes, waiting at most the port timeout."""
        instrument, link = self._connection()
        return instrument.read(link, size, self.timeout)

    def write(self, b: Any, /) -> int:
        """Send bytes to the instrument; complete commands are answered."""
        instrument, link = self._connection()
        data = bytes(b)
        instrument.receive(link, data)
        return len(data)

    @property
    def in_waiting(self) -> int:
        """Number of bytes that have arrived and not been read."""
        instrument, link = self._connection()
        return instrument.bytes_waiting(link)

    @property
    def out_waiting(self) -> int:
        """Writes reach the instrument at once, so nothing is ever waiting."""
        self._connection()
        return 0

    def reset_input_buffer(self) -> None:
        """Discard bytes that have arrived; replies still on the way arrive later."""
        instrument, link = self._connection()
        instrument.discard_arrived(link)

    def reset_output_buffer(self) -> None:
        """Nothing to discard: writes are delivered immediately."""
        self._connection()

    def flush(self) -> None:
        """Nothing to flush: writes are delivered immediately."""

    def send_break(self, duration: float = 0.25) -> None:
        """The simulated instruments ignore a break condition."""
        self._connection()

    def _update_break_state(self) -> None:
        """No break line on a simulated port."""

    def _update_rts_state(self) -> None:
        """No RTS line on a simulated port."""

    def _update_dtr_state(self) -> None:
        """No DTR line on a simulated port."""

    @property
    def cts(self) -> bool:
        """Clear To Send is always asserted by the simulated instruments."""
        self._connection()
        return True

    @property
    def dsr(self) -> bool:
        """Data Set Ready is always asserted by the simulated instruments."""
        self._connection()
        return True

    @property
    def ri(self) -> bool:
        """No ring indicator on a simulated port."""
        self._connection()
        return False

    @property
    def cd(self) -> bool:
        """Carrier Detect is always asserted by the simulated instruments."""
        self._connection()
        return True
