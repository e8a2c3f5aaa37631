defmodule ObjectStoreX.TelemetryTest do
  # The :telemetry events of downloads and uploads, seen through the API of the `telemetry`
  # package (provided in test/support/telemetry.ex, as the package cannot be installed here).
  # Handlers only forward events emitted in the test's own process: that is where the library
  # promises to emit them, and it keeps other tests' events out.
  use ExUnit.Case, async: true

  alias ObjectStoreX.TestBackends
  alias ObjectStoreX.Stream, as: OSXStream

  @mib 1_048_576
  @part 5 * @mib

  @events for op <- [:download, :upload],
              stage <- [:start, :stop, :exception],
              do: [:objectstorex, op, stage]

  setup do
    id = {__MODULE__, make_ref()}
    :ok = :telemetry.attach_many(id, @events, &__MODULE__.forward/4, self())
    on_exit(fn -> :telemetry.detach(id) end)
    :ok
  end

  @doc false
  def forward(event, measurements, metadata, test) do
    if self() == test, do: send(test, {:telemetry, event, measurements, metadata})
  end

  # Handlers run in the emitting process, so every event is in the mailbox when the call that
  # emitted it returns.
  defp events(acc \\ []) do
    receive do
      {:telemetry, [:objectstorex | event], measurements, metadata} ->
        events([{event, measurements, metadata} | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  defp sha256(data), do: Base.encode16(:crypto.hash(:sha256, data), case: :lower)
  defp random(n), do: :crypto.strong_rand_bytes(n)

  # The memory store joins its chunks into one PUT; the others upload 5 MiB parts.
  defp parts(:memory, _parts), do: 1
  defp parts(_backend, parts), do: parts

  for backend <- [:memory, :local, :s3] do
    describe "on #{backend}" do
      if backend == :s3, do: @describetag(backend: :s3)

      setup do
        {:ok, store: TestBackends.store!(unquote(backend)), backend: unquote(backend)}
      end

      test "a download emits start and stop with its bytes, chunks and digest", ctx do
        data = random(3 * @mib + 5)
        :ok = ObjectStoreX.put(ctx.store, "t/a.bin", data)
        OSXStream.download(ctx.store, "t/a.bin", chunk_size: @mib, hash: :sha256) |> Stream.run()
        meta = %{path: "t/a.bin", backend: ctx.backend}

        assert [
                 {[:download, :start], %{system_time: time}, ^meta},
                 {[:download, :stop], stop, stop_meta}
               ] = events()

        assert is_integer(time)
        assert %{bytes: bytes, chunks: 4, duration: duration} = stop
        assert bytes == byte_size(data)
        assert duration > 0
        assert stop_meta == Map.put(meta, :digest, sha256(data))
      end

      test "a missing object emits a download exception", ctx do
        assert_raise ObjectStoreX.Error, fn ->
          OSXStream.download(ctx.store, "t/missing.bin") |> Stream.run()
        end

        assert [{[:download, :start], _, start_meta}, {[:download, :exception], m, meta}] =
                 events()

        assert start_meta == %{path: "t/missing.bin", backend: ctx.backend}
        assert is_integer(m.duration) and m.duration >= 0
        assert meta == Map.put(start_meta, :reason, :not_found)
      end

      test "a digest mismatch emits a download exception and no stop", ctx do
        :ok = ObjectStoreX.put(ctx.store, "t/v.bin", random(1000))

        assert_raise ObjectStoreX.Error, ~r/does not match/, fn ->
          OSXStream.download(ctx.store, "t/v.bin",
            hash: :sha256,
            verify: String.duplicate("0", 64)
          )
          |> Stream.run()
        end

        assert [{[:download, :start], _, _}, {[:download, :exception], %{duration: d}, meta}] =
                 events()

        assert d >= 0
        assert meta == %{path: "t/v.bin", backend: ctx.backend, reason: :checksum_mismatch}
      end

      test "a streamed upload emits start and stop with its bytes, parts and digest", ctx do
        chunks = Enum.map(1..12, fn _ -> random(@mib) end)

        assert :ok =
                 OSXStream.upload(chunks, ctx.store, "t/up.bin", part_size: @part, hash: :sha256)

        meta = %{path: "t/up.bin", backend: ctx.backend}

        assert [
                 {[:upload, :start], %{system_time: time}, ^meta},
                 {[:upload, :stop], %{bytes: bytes, parts: parts, duration: duration}, stop_meta}
               ] = events()

        assert parts == parts(ctx.backend, 3)
        assert is_integer(time)
        assert bytes == 12 * @mib
        assert duration > 0
        assert stop_meta == Map.put(meta, :digest, sha256(chunks))
      end

      test "a source that raises emits an upload exception", ctx do
        source = Stream.concat([random(@part)], Stream.map([1], fn _ -> raise "boom" end))

        assert_raise RuntimeError, "boom", fn ->
          OSXStream.upload(source, ctx.store, "t/raise.bin", part_size: @part)
        end

        assert [{[:upload, :start], _, _}, {[:upload, :exception], %{duration: d}, meta}] =
                 events()

        assert d > 0
        assert %{kind: :error, reason: %RuntimeError{message: "boom"}, stacktrace: [_ | _]} = meta
        assert Map.take(meta, [:path, :backend]) == %{path: "t/raise.bin", backend: ctx.backend}
      end

      test "the upload sink emits stop, and exception when its source raises", ctx do
        data = random(1000)
        Enum.into([data], OSXStream.upload_sink(ctx.store, "t/sink.bin"))

        assert [
                 {[:upload, :start], _, _},
                 {[:upload, :stop], %{bytes: 1000, parts: 1}, %{digest: nil, path: "t/sink.bin"}}
               ] = events()

        source = Stream.concat([random(@part)], Stream.map([1], fn _ -> raise "boom" end))

        assert_raise RuntimeError, "boom", fn ->
          Enum.into(source, OSXStream.upload_sink(ctx.store, "t/halted.bin", part_size: @part))
        end

        assert [{[:upload, :start], _, _}, {[:upload, :exception], _, meta}] = events()
        assert %{kind: :error, reason: :cancelled, path: "t/halted.bin"} = meta
      end

      test "a failed write into the upload sink emits one exception, with its reason", ctx do
        sink = OSXStream.upload_sink(ctx.store, "t/bad.bin")

        collects = [
          fn -> Enum.into([random(10), :not_iodata], sink) end,
          fn -> Stream.into([random(10), :not_iodata], sink) |> Stream.run() end
        ]

        for collect <- collects do
          assert_raise ObjectStoreX.Error, ~r/upload chunks/, collect

          assert [
                   {[:upload, :start], _, _},
                   {[:upload, :exception], _, %{kind: :error, reason: :invalid_argument}}
                 ] = events()
        end

        assert {:error, %ObjectStoreX.Error{reason: :not_found}} =
                 ObjectStoreX.head(ctx.store, "t/bad.bin")
      end

      test "upload_file and transfer whose :on_progress raises emit one exception", ctx do
        file = Path.join(TestBackends.tmp_dir!("telemetry"), "source.bin")
        File.write!(file, random(1000))
        on_exit(fn -> File.rm_rf!(Path.dirname(file)) end)
        # A source of its own: the upload above may be cancelled before it writes.
        :ok = ObjectStoreX.put(ctx.store, "t/source.bin", random(1000))
        boom = fn _progress -> raise "boom" end

        assert_raise RuntimeError, "boom", fn ->
          ObjectStoreX.upload_file(ctx.store, "t/p.bin", file, on_progress: boom)
        end

        assert_raise RuntimeError, "boom", fn ->
          ObjectStoreX.transfer(ctx.store, "t/source.bin", ctx.store, "t/q.bin", on_progress: boom)
        end

        assert [
                 {[:upload, :start], _, %{path: "t/p.bin"}},
                 {[:upload, :exception], _, %{path: "t/p.bin"} = file_meta},
                 {[:upload, :start], _, %{path: "t/q.bin"}},
                 {[:upload, :exception], _, %{path: "t/q.bin"} = copy_meta}
               ] = events()

        for meta <- [file_meta, copy_meta] do
          assert %{kind: :error, reason: %RuntimeError{message: "boom"}} = meta
        end
      end

      test "upload_file and transfer emit start and stop", ctx do
        data = random(2 * @part + 3)
        file = Path.join(TestBackends.tmp_dir!("telemetry"), "source.bin")
        File.write!(file, data)
        on_exit(fn -> File.rm_rf!(Path.dirname(file)) end)

        assert {:ok, _} =
                 ObjectStoreX.upload_file(ctx.store, "t/file.bin", file, part_size: @part)

        assert {:ok, _} = ObjectStoreX.transfer(ctx.store, "t/file.bin", ctx.store, "t/copy.bin")

        assert [
                 {[:upload, :start], _, %{path: "t/file.bin"}},
                 {[:upload, :stop], file_stop, %{path: "t/file.bin", digest: nil}},
                 {[:upload, :start], _, %{path: "t/copy.bin"} = meta},
                 {[:upload, :stop], copy_stop, %{path: "t/copy.bin", digest: digest}}
               ] = events()

        assert %{bytes: bytes, parts: parts} = file_stop
        assert parts == parts(ctx.backend, 3)
        assert bytes == byte_size(data)
        assert copy_stop.bytes == byte_size(data)
        assert meta.backend == ctx.backend
        # transfer hashes by default
        assert digest == sha256(data)
      end
    end
  end

  describe "through a store that fails on purpose" do
    for backend <- [:memory, :local, :s3] do
      if backend == :s3, do: @tag(backend: :s3)

      test "an upload whose completion fails emits an exception with the reason (#{backend})" do
        store =
          TestBackends.store!(unquote(backend))
          |> ObjectStoreX.Fault.wrap!(fail: [op: :complete_multipart, reason: :generic])

        file = Path.join(TestBackends.tmp_dir!("telemetry"), "source.bin")
        File.write!(file, random(@part + 1))
        on_exit(fn -> File.rm_rf!(Path.dirname(file)) end)

        assert {:error, %ObjectStoreX.Error{reason: :generic}} =
                 ObjectStoreX.upload_file(store, "t/fails.bin", file, part_size: @part)

        assert [{[:upload, :start], _, _}, {[:upload, :exception], %{duration: d}, meta}] =
                 events()

        assert d > 0

        assert meta == %{
                 path: "t/fails.bin",
                 backend: unquote(backend),
                 kind: :error,
                 reason: :generic
               }
      end
    end
  end

  describe "metadata" do
    @describetag backend: :s3

    test "never carries credentials or object data" do
      access_key = "AKIAOBJXTELEMETRYKEY"
      secret = "objx-telemetry-secret-7Qf2Lw9Zr"
      store = TestBackends.store!(:s3, access_key_id: access_key, secret_access_key: secret)
      marker = "OBJX-DATA-MARKER-51d3"
      data = marker <> random(2 * @part)

      :ok = ObjectStoreX.put(store, "t/s.bin", data)
      OSXStream.download(store, "t/s.bin", hash: :md5) |> Stream.run()
      catch_error(OSXStream.download(store, "t/none.bin") |> Stream.run())
      :ok = OSXStream.upload([data], store, "t/s2.bin", part_size: @part, hash: :sha1)
      catch_error(OSXStream.upload(Stream.map([1], fn _ -> raise "x" end), store, "t/s3.bin"))
      Enum.into([marker], OSXStream.upload_sink(store, "t/s4.bin"))

      events = events()
      assert length(events) == 10
      dump = inspect(events, limit: :infinity, printable_limit: :infinity)
      refute dump =~ secret
      refute dump =~ access_key
      refute dump =~ marker
    end
  end

  describe "without :telemetry" do
    test "downloads and uploads work and emit nothing" do
      # A second VM whose code path holds the library without the stand-in: the state of any
      # application that does not use telemetry.
      dir = TestBackends.tmp_dir!("no-telemetry")
      on_exit(fn -> File.rm_rf!(dir) end)
      lib = :code.lib_dir(:objectstorex)
      ebin = Path.join([dir, "objectstorex", "ebin"])
      File.mkdir_p!(ebin)

      for beam <- File.ls!(Path.join(lib, "ebin")), beam != "telemetry.beam" do
        File.cp!(Path.join([lib, "ebin", beam]), Path.join(ebin, beam))
      end

      File.ln_s!(Path.join(lib, "priv"), Path.join([dir, "objectstorex", "priv"]))

      script = """
      false = Code.ensure_loaded?(:telemetry)
      store = ObjectStoreX.new!(:memory)
      :ok = ObjectStoreX.put(store, "a.bin", "hello")
      "hello" = ObjectStoreX.Stream.download(store, "a.bin", hash: :sha256) |> Enum.join()
      :ok = ObjectStoreX.Stream.upload(["x", "y"], store, "b.bin")
      {:ok, %{bytes: 2}} = ObjectStoreX.transfer(store, "b.bin", store, "c.bin")

      try do
        ObjectStoreX.Stream.download(store, "missing.bin") |> Stream.run()
      rescue
        e in ObjectStoreX.Error -> :not_found = e.reason
      end

      false = Code.ensure_loaded?(:telemetry)
      IO.puts("all done")
      """

      elixir = System.find_executable("elixir")
      {out, status} = System.cmd(elixir, ["-pa", ebin, "-e", script], stderr_to_stdout: true)
      assert {status, out} == {0, "all done\n"}
    end
  end
end
