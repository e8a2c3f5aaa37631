defmodule ObjectStoreX.CLI.ProgressBar do
  @moduledoc false
  # The progress bar of `mix objectstorex.cp` on a terminal: one process owns the line on
  # standard error, so that the copies of a recursive run (each reporting from its own process)
  # share one bar, and lines printed meanwhile (per-object summaries, failures) appear above it
  # instead of through it.
  #
  # The bar is redrawn in place with "\r" at most every 100 ms:
  #
  #    42% [##########..............]  107.5 MiB / 256.0 MiB  212.4 MiB/s  ETA 0:01

  alias ObjectStoreX.CLI

  @interval_ms 100
  @width 24

  @doc """
  Starts a reporter linked to the caller, for `total` bytes; with `nil`, the total is the sum
  of the totals that the copies report (none reported: unknown).
  """
  @spec start(non_neg_integer() | nil) :: pid()
  def start(total) do
    now = System.monotonic_time(:microsecond)
    state = %{total: total, totals: %{}, done: %{}, started: now, drawn: 0, last: nil}
    spawn_link(fn -> loop(state) end)
  end

  @doc """
  Reports that the copy `id` has moved `bytes` so far, out of `total` (as an `:on_progress`
  report says it, `nil` when unknown).
  """
  @spec update(pid(), term(), non_neg_integer(), non_neg_integer() | nil) :: :ok
  def update(pid, id, bytes, total \\ nil) do
    send(pid, {:bytes, id, bytes, total})
    :ok
  end

  @doc "Prints `line` to `device` (`:stdio` or `:stderr`) above the bar."
  @spec line(pid(), :stdio | :stderr, String.t()) :: :ok
  def line(pid, device, line), do: call(pid, {:line, device, line})

  @doc "Draws the final state, ends the bar's line and stops the reporter."
  @spec stop(pid()) :: :ok
  def stop(pid), do: call(pid, :stop)

  defp call(pid, request) do
    ref = Process.monitor(pid)
    send(pid, {request, self(), ref})

    receive do
      {^ref, :ok} ->
        Process.demonitor(ref, [:flush])
        :ok

      {:DOWN, ^ref, _, _, _} ->
        :ok
    end
  end

  defp loop(state) do
    receive do
      {:bytes, id, bytes, total} ->
        totals = if total, do: Map.put(state.totals, id, total), else: state.totals
        state = %{state | done: Map.put(state.done, id, bytes), totals: totals}
        now = System.monotonic_time(:microsecond)

        # Monotonic time is often negative: the first report draws whatever its value.
        if state.last == nil or now - state.last >= @interval_ms * 1000 do
          loop(draw(%{state | last: now}, now))
        else
          loop(state)
        end

      {{:line, device, line}, from, ref} ->
        clear(state)
        flush_stderr()
        IO.puts(device, line)
        now = System.monotonic_time(:microsecond)
        send(from, {ref, :ok})
        loop(draw(%{state | drawn: 0}, now))

      {:stop, from, ref} ->
        state = draw(state, System.monotonic_time(:microsecond))
        if state.drawn > 0, do: IO.write(:stderr, "\n")
        flush_stderr()
        send(from, {ref, :ok})
    end
  end

  # Standard error's port may still hold the bar when the caller prints to standard output
  # through another port, and the terminal would then show the summary before the bar (or the
  # bar through it): wait, briefly, until the port has written what it was given.
  defp flush_stderr do
    with pid when is_pid(pid) <- Process.whereis(:standard_error),
         {:links, links} <- Process.info(pid, :links),
         [port | _] <- Enum.filter(links, &is_port/1) do
      wait_written(port, 200)
    end

    :ok
  end

  defp wait_written(_port, 0), do: :ok

  defp wait_written(port, tries) do
    case :erlang.port_info(port, :queue_size) do
      {:queue_size, n} when n > 0 ->
        Process.sleep(1)
        wait_written(port, tries - 1)

      _ ->
        :ok
    end
  end

  defp clear(%{drawn: 0}), do: :ok
  defp clear(_state), do: IO.write(:stderr, "\r\e[K")

  defp draw(state, now) do
    done = state.done |> Map.values() |> Enum.sum()
    micros = max(now - state.started, 1)
    speed = done * 1_000_000 / micros

    text =
      case state.total || total_reported(state.totals) do
        total when is_integer(total) and total > 0 ->
          fraction = min(done / total, 1.0)
          filled = round(fraction * @width)

          "#{String.pad_leading("#{trunc(fraction * 100)}", 3)}% " <>
            "[#{String.duplicate("#", filled)}#{String.duplicate(".", @width - filled)}]  " <>
            "#{CLI.Format.bytes(done)} / #{CLI.Format.bytes(total)}  #{CLI.Format.rate(done, micros)}  " <>
            "ETA #{eta(total - done, speed)}"

        _ ->
          "#{CLI.Format.bytes(done)}  #{CLI.Format.rate(done, micros)}"
      end

    IO.write(:stderr, "\r" <> text <> "\e[K")
    %{state | drawn: state.drawn + 1}
  end

  defp total_reported(totals) when totals == %{}, do: nil
  defp total_reported(totals), do: totals |> Map.values() |> Enum.sum()

  defp eta(_left, speed) when speed <= 0, do: "--:--"

  defp eta(left, speed) do
    seconds = max(round(left / speed), 0)
    minutes = div(seconds, 60)
    "#{div(minutes, 60)}:#{pad(rem(minutes, 60))}:#{pad(rem(seconds, 60))}"
  end

  defp pad(n), do: String.pad_leading(Integer.to_string(n), 2, "0")
end
