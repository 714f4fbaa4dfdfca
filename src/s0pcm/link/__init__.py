"""The link to a module: its events (``events``, no pyserial), the serial port (``port``), the
noise log, and captures replayed from a file (``capture``). Import the module you need: this
package imports nothing, so the journal does not load pyserial."""
