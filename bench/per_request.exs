# Where the CPU of one small request goes: COUNT puts (or gets) of SIZE bytes, CONCURRENCY in
# flight under Task.async_stream, with the user + system time of every thread of this VM read
# from /proc before and after, summed by kind of thread.
#
#   MIX_ENV=prod mix run --no-compile bench/per_request.exs put|get STORE COUNT SIZE CONCURRENCY
#
# STORE as for bench/osx.exs. Prints `PER_REQUEST ops_per_s total_us` and one
# `THREADS kind user_us system_us` line per kind of thread (the VM's schedulers, its aux
# thread, its dirty schedulers, the library's I/O threads), in CPU microseconds per request.
# Run it under different emulator flags (ELIXIR_ERL_OPTIONS) to see what they change; the
# figures are not part of `make bench`.
Code.require_file("store_spec.exs", __DIR__)

defmodule Bench.PerRequest do
  # /proc/<pid>/task/<tid>/stat counts in clock ticks of 10 ms.
  @tick_us 10_000

  def main([op, spec, count, size, concurrency]) do
    store = Bench.StoreSpec.open!(spec)
    [count, size, concurrency] = Enum.map([count, size, concurrency], &String.to_integer/1)
    body = :binary.copy(<<0>>, size)
    paths = Enum.map(1..count, &"bench/per-request/#{&1}")
    # Gets read what a put wrote; either way the connections are open before timing.
    if op == "get", do: run(paths, concurrency, &ObjectStoreX.put!(store, &1, body))
    :ok = ObjectStoreX.put(store, "bench/per-request/warm", body)

    request =
      case op do
        "put" -> &(:ok = ObjectStoreX.put(store, &1, body))
        "get" -> &({:ok, _, _} = ObjectStoreX.get(store, &1))
      end

    before = threads()
    started = System.monotonic_time(:microsecond)
    run(paths, concurrency, request)
    micros = System.monotonic_time(:microsecond) - started
    used = since(threads(), before)

    total = used |> Map.values() |> Enum.map(fn {u, s} -> u + s end) |> Enum.sum()
    IO.puts("PER_REQUEST #{round(count * 1.0e6 / micros)} #{per(total, count)}")

    for {kind, {u, s}} <- Enum.sort_by(used, fn {_, {u, s}} -> -(u + s) end),
        u + s > 0,
        do: IO.puts("THREADS #{kind} #{per(u, count)} #{per(s, count)}")
  end

  defp run(paths, concurrency, fun) do
    paths
    |> Task.async_stream(fun, max_concurrency: concurrency, ordered: false, timeout: :infinity)
    |> Stream.run()
  end

  defp per(ticks, count), do: Float.round(ticks * @tick_us / count, 1)

  # {user, system} ticks by thread id, with the thread's kind: its name without the number
  # the VM puts in front ("1_scheduler", "3_dirty_io_sche": Linux keeps 15 characters).
  defp threads do
    for tid <- File.ls!("/proc/self/task"), into: %{} do
      stat = File.read!("/proc/self/task/#{tid}/stat")
      # The name is in brackets and may hold spaces; the fields after it are space-separated.
      [_, name, rest] = Regex.run(~r/^\d+ \((.*)\) (.*)$/s, stat)
      [utime, stime] = rest |> String.split(" ") |> Enum.slice(11, 2)
      kind = String.replace(name, ~r/^\d+_/, "")
      {tid, {kind, String.to_integer(utime), String.to_integer(stime)}}
    end
  end

  defp since(now, before) do
    Enum.reduce(now, %{}, fn {tid, {kind, u, s}}, acc ->
      {_, u0, s0} = Map.get(before, tid, {kind, 0, 0})
      Map.update(acc, kind, {u - u0, s - s0}, fn {au, as} -> {au + u - u0, as + s - s0} end)
    end)
  end
end

Bench.PerRequest.main(System.argv())
