# Where the CPU of one small request goes: COUNT puts (or gets) of SIZE bytes, CONCURRENCY in
# flight, each a `put/4` (`get/3`) under Task.async_stream, or all through `Stream.put_many/3`
# (`Stream.get_many/3`), with the user + system time of every thread of this VM read from /proc
# before and after, summed by kind of thread.
#
#   MIX_ENV=prod mix run --no-compile bench/per_request.exs OP STORE COUNT SIZE CONCURRENCY
#
# OP is put, get, put_many or get_many; or wake, the yardstick of what the VM pays for each
# reply: COUNT sleeps of one process, SIZE milliseconds each (`Process.sleep/1`), so COUNT
# wake-ups of its scheduler and no request (CONCURRENCY unused).
#
# STORE as for bench/osx.exs. Prints `PER_REQUEST ops_per_s total_us` and one
# `THREADS kind user_us system_us switches` line per kind of thread (the VM's schedulers, its
# aux thread, its dirty schedulers, the library's I/O threads): CPU microseconds and context
# switches per request (each sleep is one, ended by a wake-up; so is each time the kernel
# takes the core away, which a spinning scheduler's yields invite).
# Run it under different emulator flags (ELIXIR_ERL_OPTIONS) to see what they change; the
# figures are not part of `make bench`.
Code.require_file("store_spec.exs", __DIR__)
Code.require_file("proc.exs", __DIR__)

defmodule Bench.PerRequest do
  def main([op, spec, count, size, concurrency]) do
    store = Bench.StoreSpec.open!(spec)
    [count, size, concurrency] = Enum.map([count, size, concurrency], &String.to_integer/1)
    body = :binary.copy(<<0>>, size)
    paths = Enum.map(1..count, &"bench/per-request/#{&1}")
    # Gets read what a put wrote; either way the connections are open before timing.
    if op in ["get", "get_many"], do: run(paths, concurrency, &ObjectStoreX.put!(store, &1, body))
    :ok = ObjectStoreX.put(store, "bench/per-request/warm", body)
    opts = [max_concurrency: concurrency, ordered: false]

    work =
      case op do
        "put" ->
          fn -> run(paths, concurrency, &(:ok = ObjectStoreX.put(store, &1, body))) end

        "get" ->
          fn -> run(paths, concurrency, &({:ok, _, _} = ObjectStoreX.get(store, &1))) end

        "put_many" ->
          fn ->
            ObjectStoreX.Stream.put_many(store, Stream.map(paths, &{&1, body}), opts)
            |> Stream.each(fn {_, {:ok, _}} -> :ok end)
            |> Stream.run()
          end

        "wake" ->
          fn -> for _ <- 1..count, do: Process.sleep(size) end

        "get_many" ->
          fn ->
            ObjectStoreX.Stream.get_many(store, paths, opts)
            |> Stream.each(fn {_, {:ok, _, _}} -> :ok end)
            |> Stream.run()
          end
      end

    before = Bench.Proc.threads()
    started = System.monotonic_time(:microsecond)
    work.()
    micros = System.monotonic_time(:microsecond) - started
    used = since(Bench.Proc.threads(), before)

    total = used |> Map.values() |> Enum.map(fn {u, s, _} -> u + s end) |> Enum.sum()
    IO.puts("PER_REQUEST #{round(count * 1.0e6 / micros)} #{per(total, count)}")

    for {kind, {u, s, switches}} <- Enum.sort_by(used, fn {_, {u, s, _}} -> -(u + s) end),
        u + s > 0,
        do:
          IO.puts(
            "THREADS #{kind} #{per(u, count)} #{per(s, count)} " <>
              "#{Float.round(switches / count, 2)}"
          )
  end

  defp run(paths, concurrency, fun) do
    paths
    |> Task.async_stream(fun, max_concurrency: concurrency, ordered: false, timeout: :infinity)
    |> Stream.run()
  end

  defp per(ticks, count), do: Float.round(ticks * Bench.Proc.tick_us() / count, 1)

  # `{utime, stime, switches}` since `before`, summed by kind of thread.
  defp since(now, before) do
    Enum.reduce(now, %{}, fn {tid, {kind, u, s, n}}, acc ->
      {_, u0, s0, n0} = Map.get(before, tid, {kind, 0, 0, 0})
      {du, ds, dn} = delta = {u - u0, s - s0, n - n0}
      Map.update(acc, kind, delta, fn {au, as, an} -> {au + du, as + ds, an + dn} end)
    end)
  end
end

Bench.PerRequest.main(System.argv())
